"""moto in server mode, answering one request at a time.

moto's own `moto_server` handles requests on concurrent threads, and then its DynamoDB
conditional writes and TransactWriteItems are not atomic: two concurrent transactions can
both pass the same `seq = :previous` condition and both commit. Real DynamoDB never does
that, so the local stack serialises requests behind one lock. moto is single-core bound
anyway (the GIL), so this costs no throughput.

Usage: python scripts/moto_server.py [-H 127.0.0.1] [-p 5000]
"""

import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class OneAtATime:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # moto builds whole responses; materialise inside the lock all the same.
            return list(self.app(environ, start_response))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        OneAtATime(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
