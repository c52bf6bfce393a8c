from . import test_jobs
from . import test_install
from . import test_workers
