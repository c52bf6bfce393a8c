from . import sage_client

__all__ = ["sage_client"]
