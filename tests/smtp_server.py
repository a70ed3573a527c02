"""A real SMTP server on loopback for cpwatch's tests (aiosmtpd).

Usage: python3 smtp_server.py PORT DIR

Each accepted message is written to DIR/<n>.eml with its envelope in
DIR/<n>.json. The file DIR/mode decides how DATA is answered, read afresh for
each message: "accept" (the default), "tempfail N" (451 for the next N
messages, then accept), "reject" (550), "reject-to ADDRESS" (550 for a
message to ADDRESS, accept the rest), or "delay S" (accept after S seconds,
to make a send loop slow enough to interrupt).
"""
import asyncio
import json
import os
import sys

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    def mode(self):
        try:
            with open(os.path.join(self.directory, "mode")) as f:
                return f.read().split()
        except FileNotFoundError:
            return ["accept"]

    async def handle_DATA(self, server, session, envelope):
        mode = self.mode()
        if mode and mode[0] == "reject":
            return "550 5.7.1 Relaying denied for this test"
        if mode and mode[0] == "reject-to" and mode[1] in envelope.rcpt_tos:
            return "550 5.1.1 No such mailbox for this test"
        if mode and mode[0] == "delay":
            await asyncio.sleep(float(mode[1]))
        if mode and mode[0] == "tempfail" and int(mode[1]) > 0:
            with open(os.path.join(self.directory, "mode"), "w") as f:
                f.write(f"tempfail {int(mode[1]) - 1}")
            return "451 4.3.0 Try again later"
        self.count += 1
        base = os.path.join(self.directory, f"{self.count}")
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".json", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos}, f)
        return "250 2.0.0 Accepted"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Handler(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
