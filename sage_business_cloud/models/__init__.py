from . import sage_connection
from . import sage_sync_run
from . import sage_deleted_contact
from . import sage_invoice
from . import res_partner
from . import res_config_settings
from . import sage_sync
