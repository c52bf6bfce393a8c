from . import test_sage_client
from . import test_install
from . import test_export
from . import test_sync_contacts
from . import test_push
from . import test_merge
from . import test_sync_invoices
from . import test_sync_concurrency
