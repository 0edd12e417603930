"""moto server (the AWS emulator) answering one request at a time.

DynamoDB runs every TransactWriteItems atomically and serialisably: of two racing
transactions with the same create-once condition, one fails. moto's own server is threaded
and does not lock its tables, so both can pass. Serving it on one thread gives the emulator
the guarantee the adapters rely on in production.

Usage: python moto_serial.py PORT
"""

import os
import signal
import sys

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    port = int(sys.argv[1])
    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
