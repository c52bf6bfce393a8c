from . import base_partner_merge
from . import sage_link_wizard
from . import sage_export_confirm
from . import sage_link_action
from . import sage_sync_undo
