#!/usr/bin/python3
"""A real SMTP server for tests: accepts mail and stores it as files.

Usage:
    /usr/bin/python3 tests/support/smtp_sink.py --port N --dir D
        [--host 127.0.0.1] [--fail-first N]

Prints "READY <port>" on stdout (flushed) once listening; with --port 0 the
port is chosen by the system and the printed one is the real one.

Storage: every accepted message becomes two files in D, both written to a
temporary name and renamed into place:
    <name>.json   {"mail_from": ..., "rcpt_tos": [...], "received_at": epoch,
                   "size": bytes, "peer": [client ip, client port]}
                  (the peer port shows whether a client reused its connection)
    <name>.eml    the message exactly as received (CRLF line endings, SMTP
                  dot-stuffing removed)
<name> is "<epoch ms>-<pid>-<counter>", unique and sortable in arrival order.
The .json is renamed first, so when a .eml is visible its envelope is too:
readers should look for *.eml.

Fault injection by the recipient's local part (any domain):
    fail451@      RCPT answered "451 4.3.0 Try again later"
    fail550@      RCPT answered "550 5.1.1 No such user"
    fail552@      RCPT answered "552 5.2.2 Mailbox full"
    fail521@      RCPT answered "550 5.2.1 Mailbox disabled"
    fail571@      RCPT answered "550 5.7.1 Delivery not authorized, message refused"
    fail550bare@  RCPT answered "550 Mailbox unavailable" (no enhanced code)
    data554@      RCPT accepted, the end of DATA answered "554 5.1.1 Mailbox does not exist"
    data571@      RCPT accepted, the end of DATA answered "554 5.7.1 Message refused"
    slow@         the reply to the end of DATA waits 3 s
and by the sender's local part:
    mailfail550@  MAIL FROM answered "550 5.1.1 Sender address unknown" (a reply
                  about the sender, which must not read as one about a recipient)
A message refused at the end of DATA is not stored.
--fail-first N: the first N RCPT attempts for each recipient address get
"451 4.3.0 Try again later" (for retry tests).

No TLS and no AUTH: tests run crier with CRIER_SMTP_TLS=off against it.
Stops on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time

from aiosmtpd.smtp import SMTP

FAULTS = {
    "fail451": "451 4.3.0 Try again later",
    "fail550": "550 5.1.1 No such user",
    "fail552": "552 5.2.2 Mailbox full",
    "fail521": "550 5.2.1 Mailbox disabled",
    "fail571": "550 5.7.1 Delivery not authorized, message refused",
    "fail550bare": "550 Mailbox unavailable",
}
DATA_FAULTS = {
    "data554": "554 5.1.1 Mailbox does not exist",
    "data571": "554 5.7.1 Message refused",
}
MAIL_FAULTS = {
    "mailfail550": "550 5.1.1 Sender address unknown",
}


def local_part(address):
    return address.rsplit("@", 1)[0].lower()


class SinkHandler:
    def __init__(self, directory, fail_first):
        self.directory = directory
        self.fail_first = fail_first
        self.attempts = {}
        self.counter = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        fault = MAIL_FAULTS.get(local_part(address))
        if fault:
            return fault
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        fault = FAULTS.get(local_part(address))
        if fault:
            return fault
        if self.fail_first > 0:
            key = address.lower()
            seen = self.attempts.get(key, 0)
            if seen < self.fail_first:
                self.attempts[key] = seen + 1
                return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(local_part(a) == "slow" for a in envelope.rcpt_tos):
            await asyncio.sleep(3)
        for a in envelope.rcpt_tos:
            fault = DATA_FAULTS.get(local_part(a))
            if fault:
                return fault
        self.counter += 1
        name = "%d-%d-%06d" % (int(time.time() * 1000), os.getpid(), self.counter)
        content = envelope.original_content or b""
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "received_at": time.time(),
            "size": len(content),
            "peer": list(session.peer)[:2] if session.peer else None,
        }
        self._store(name + ".json", json.dumps(meta).encode("utf-8"))
        self._store(name + ".eml", content)
        return "250 2.0.0 OK queued as " + name

    def _store(self, final_name, data):
        tmp = os.path.join(self.directory, ".tmp-" + final_name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.directory, final_name))


async def serve(args):
    os.makedirs(args.dir, exist_ok=True)
    handler = SinkHandler(args.dir, args.fail_first)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.test", ident="crier test sink"),
        host=args.host,
        port=args.port,
        backlog=1024,
    )
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop
    server.close()
    await server.wait_closed()


def main():
    parser = argparse.ArgumentParser(description="SMTP sink for tests")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--dir", required=True, help="where messages are stored")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--fail-first", type=int, default=0, metavar="N")
    args = parser.parse_args()
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
