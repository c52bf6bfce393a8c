"""Command line: ``python -m sage_sandbox --port 8070 --contacts 500 --invoices 2000``."""

import argparse

from .oauth import DEFAULT_REDIRECT_URIS
from .server import SandboxServer, configure_logging


def build_parser():
    """Argument parser; every option shows its default in ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m sage_sandbox", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Local stand-in for the Sage Business Cloud Accounting UK API v3.1.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (loopback only by default)")
    parser.add_argument("--port", type=int, default=8070, help="TCP port (0 picks a free one)")
    parser.add_argument("--contacts", type=int, default=0, help="contacts to seed in the lead business")
    parser.add_argument("--invoices", type=int, default=0, help="sales + purchase invoices to seed")
    parser.add_argument("--seed", type=int, default=1, help="random seed; same seed gives identical data and ids")
    parser.add_argument("--businesses", type=int, default=1, help="businesses of the sandbox user (first = lead)")
    parser.add_argument("--state-file", default=None,
                        help="JSON file loaded at start (if present) and saved after changes and at shutdown")
    parser.add_argument("--auto-approve", action="store_true", help="skip the consent form when authorising")
    parser.add_argument("--client-id", default="sandbox-client-id", help="registered OAuth client id")
    parser.add_argument("--client-secret", default="sandbox-client-secret", help="registered OAuth client secret")
    parser.add_argument("--redirect-uri", action="append", dest="redirect_uris", default=None,
                        help=f"registered callback URL (repeatable; default: {', '.join(DEFAULT_REDIRECT_URIS)})")
    parser.add_argument("--access-token-ttl", type=int, default=300, help="access token lifetime (seconds)")
    parser.add_argument("--refresh-token-ttl", type=int, default=2678400, help="refresh token lifetime (seconds)")
    parser.add_argument("--code-ttl", type=int, default=60, help="authorization code lifetime (seconds)")
    parser.add_argument("--nested-put", choices=("merge", "replace"), default="merge",
                        help="PUT /contacts with a nested address or contact person: merge the given sub-fields, "
                             "or replace the stored object whole (omitted sub-fields become null)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser


def main(argv=None):
    """Parse options and serve until interrupted."""
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet)
    server = SandboxServer(
        host=args.host, port=args.port, contacts=args.contacts, invoices=args.invoices, seed=args.seed,
        auto_approve=args.auto_approve, client_id=args.client_id, client_secret=args.client_secret,
        redirect_uris=args.redirect_uris, access_token_ttl=args.access_token_ttl,
        refresh_token_ttl=args.refresh_token_ttl, code_ttl=args.code_ttl, businesses=args.businesses,
        state_file=args.state_file, nested_put=args.nested_put)
    server.start()
    print(f"Sage sandbox listening on {server.base_url} (API {server.base_url}/v3.1, "
          f"lead business {server.store.business_ids()[0]})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
