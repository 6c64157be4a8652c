#!/usr/bin/env python3
"""QuickFIX (the C++ engine through its Python bindings) as the reference acceptor, or
initiator, for the conformance scenarios: the same scenario is played against it and
against fix-engine, and every answer is compared field for field.

It runs QuickFIX's own acceptance-test application: NewOrderSingle is echoed back (not
again when it carries PossResend=Y and its ClOrdID was already seen), SecurityDefinition
is echoed back from FIX.4.2 on, anything else is an unsupported message type (QuickFIX
answers it with a BusinessMessageReject, or a Reject before FIX.4.2).

Commands, one per line on standard input; each is answered with one line on standard
output:
  start SETTINGS     start an acceptor from a QuickFIX settings file  -> "ready"
  initiate SETTINGS  start an initiator from one                      -> "ready"
  stop               stop it (sessions are dropped, nothing is kept)  -> "stopped"
End of input stops everything.
"""
import sys
import threading

import quickfix as fix

ECHO_SECURITY_DEFINITION = {"FIX.4.2", "FIX.4.3", "FIX.4.4", "FIXT.1.1"}


class AcceptanceApp(fix.Application):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.orders = set()

    def onCreate(self, sid):
        pass

    def onLogon(self, sid):
        pass

    def onLogout(self, sid):
        with self.lock:
            self.orders.clear()

    def toAdmin(self, msg, sid):
        pass

    def fromAdmin(self, msg, sid):
        pass

    def toApp(self, msg, sid):
        pass

    def fromApp(self, msg, sid):
        header = msg.getHeader()
        msg_type = header.getField(35)
        if msg_type == "D":
            poss_resend = header.isSetField(97) and header.getField(97) == "Y"
            key = (msg.getField(11) if msg.isSetField(11) else "", sid.toString())
            with self.lock:
                if poss_resend and key in self.orders:
                    return
                self.orders.add(key)
            fix.Session.sendToTarget(fix.Message(msg), sid)
        elif msg_type == "d" and sid.getBeginString().getValue() in ECHO_SECURITY_DEFINITION:
            fix.Session.sendToTarget(fix.Message(msg), sid)
        else:
            raise fix.UnsupportedMessageType()


def main():
    app = AcceptanceApp()
    acceptor = None
    for line in sys.stdin:
        word, _, arg = line.strip().partition(" ")
        if word in ("start", "initiate"):
            if acceptor is not None:
                acceptor.stop(True)
            settings = fix.SessionSettings(arg)
            kind = fix.SocketAcceptor if word == "start" else fix.SocketInitiator
            acceptor = kind(app, fix.MemoryStoreFactory(), settings, fix.ScreenLogFactory(False, False, False))
            acceptor.start()
            print("ready", flush=True)
        elif word == "stop":
            if acceptor is not None:
                acceptor.stop(True)
                acceptor = None
            with app.lock:
                app.orders.clear()
            print("stopped", flush=True)
        elif word:
            print(f"error unknown command {word!r}", flush=True)
    if acceptor is not None:
        acceptor.stop(True)


if __name__ == "__main__":
    main()
