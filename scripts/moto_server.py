"""moto's server, with requests applied one at a time, as AWS applies conditional writes.

moto checks a condition (DynamoDB ConditionExpression, S3 If-Match / If-None-Match) and
then writes, with no lock between the two, on a threaded server: two conditional writes
that arrive together can both succeed. Seen in the tests: two engines both acquiring
the DynamoDB lease 1 ms apart when the lease store came back (epochs 2 and 3), and Tansu
handing out one S3 offset twice. The real services make each conditional write atomic,
and the tests check our code against that contract, so this server reads each request's
body first and then runs moto's handler under one lock. Everything else is moto's own
server (`moto_server`).

Usage: python scripts/moto_server.py PORT
"""

import io
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class OneAtATime:
    """A WSGI app that runs `app` for one request at a time, its body read beforehand
    (so a client that stalls mid-request holds no one else up)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            body = stream.read(int(length))
        elif environ.get("wsgi.input_terminated"):
            body = stream.read()
        else:
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        with self.lock:
            return list(self.app(environ, start_response))


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: moto_server.py PORT")
    run_simple(
        "127.0.0.1",
        int(sys.argv[1]),
        OneAtATime(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
