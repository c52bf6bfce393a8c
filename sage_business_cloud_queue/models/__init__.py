from . import sage_connection
from . import sage_binding
