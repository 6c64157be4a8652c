#!/usr/bin/env python3
"""QuickFIX (C++ engine, Python bindings) as the third-party counterparty in interop tests.

initiator role: connects to our acceptor and runs a script — logon, order round trip, a
gap on its own side (answered by our ResendRequest and its gap fill), a gap it opens on
our side (answered by our resend with PossDupFlag=Y), one order per validation fault
(each answered by a session Reject, none delivered), logout.

reset role: the initiator again on the same store with ResetOnLogon=Y (its Logon carries
ResetSeqNumFlag=Y and MsgSeqNum 1; FIX.4.1 on), an order round trip, logout. Prints one
JSON line with what it observed and exits 0 when every check held.

acceptor role: listens on 127.0.0.1, answers NewOrderSingle with ExecutionReport New and
Fill, and runs until stdin closes. Prints JSON lines for events.

trader role: an initiator with a file store and every engine of a group as alternate
addresses (--ports), sending NewOrderSingle at --rate while logged on, for failover
tests. When stdin closes it stops sending, waits for the answers, and prints one JSON
line: orders sent, filled, unanswered, logons, and every reject or Logout text.
"""
import argparse
import json
import os
import sys
import threading
import time

import quickfix as fix

FIX4 = {"FIX.4.0", "FIX.4.1", "FIX.4.2"}


def settings_text(args, role):
    lines = [
        "[DEFAULT]",
        f"ConnectionType={role}",
        f"FileStorePath={os.path.join(args.workdir, 'store')}",
        f"FileLogPath={os.path.join(args.workdir, 'log')}",
        "HeartBtInt=30",
        "ReconnectInterval=1",
        "StartTime=00:00:00",
        "EndTime=00:00:00",
        "UseDataDictionary=Y",
        "ValidateUserDefinedFields=N",
        "[SESSION]",
        f"BeginString={args.begin}",
        f"SenderCompID={args.sender}",
        f"TargetCompID={args.target}",
    ]
    if role == "trader":
        lines += ["HeartBtInt=1", "ResetOnLogon=N", "ResetOnLogout=N", "ResetOnDisconnect=N"]
        for i, port in enumerate(args.ports):
            suffix = "" if i == 0 else str(i)
            lines += [f"SocketConnectHost{suffix}=127.0.0.1", f"SocketConnectPort{suffix}={port}"]
        lines[1] = "ConnectionType=initiator"
    elif role == "initiator":
        lines += ["SocketConnectHost=127.0.0.1", f"SocketConnectPort={args.port}"]
    else:
        lines += ["SocketAcceptHost=127.0.0.1", f"SocketAcceptPort={args.port}"]
    d = args.dict_dir
    if args.begin == "FIXT.1.1":
        lines += [
            f"DefaultApplVerID={args.appl}",
            f"TransportDataDictionary={os.path.join(d, 'FIXT11.xml')}",
            f"AppDataDictionary={os.path.join(d, args.appl.replace('.', '') + '.xml')}",
        ]
    else:
        lines.append(f"DataDictionary={os.path.join(d, args.begin.replace('.', '') + '.xml')}")
    return "\n".join(lines) + "\n"


def field(msg, tag, header=False):
    fm = msg.getHeader() if header else msg
    return fm.getField(tag) if fm.isSetField(tag) else None


class Peer(fix.Application):
    def __init__(self, begin, emit):
        super().__init__()
        self.begin = begin
        self.emit = emit
        self.session = None
        self.logged_on = threading.Event()
        self.logged_out = threading.Event()
        self.lock = threading.Lock()
        self.received = []  # (MsgType, ClOrdID, ExecType, PossDup)
        self.admin_in = []
        self.rejects = []  # (RefSeqNum, SessionRejectReason, RefTagID, Text)
        self.sent_seq = {}  # ClOrdID -> MsgSeqNum it was sent with
        self.exec_id = 0

    def onCreate(self, sid):
        self.session = sid

    def onLogon(self, sid):
        self.emit({"event": "logon"})
        self.logged_on.set()

    def onLogout(self, sid):
        self.emit({"event": "logout"})
        self.logged_out.set()

    def toAdmin(self, msg, sid):
        pass

    def fromAdmin(self, msg, sid):
        mt = field(msg, 35, header=True)
        with self.lock:
            self.admin_in.append(mt)
            if mt == "3":
                self.rejects.append((field(msg, 45), field(msg, 373), field(msg, 371), field(msg, 58)))

    def toApp(self, msg, sid):
        if msg.isSetField(11):
            with self.lock:
                self.sent_seq[field(msg, 11)] = field(msg, 34, header=True)

    def fromApp(self, msg, sid):
        mt = field(msg, 35, header=True)
        # FIX.4.0 has no ExecType: OrdStatus tells a fill there.
        exec_type = field(msg, 150) if msg.isSetField(150) else field(msg, 39)
        entry = (mt, field(msg, 11), exec_type, field(msg, 43, header=True) == "Y")
        with self.lock:
            self.received.append(entry)
        self.emit({"event": "app", "msg_type": mt, "cl_ord_id": entry[1], "poss_dup": entry[3]})
        if mt == "D" and self.acceptor:
            self.answer_order(msg, sid)

    acceptor = False

    def answer_order(self, order, sid):
        for status, exec_type in (("0", "0"), ("2", "2" if self.begin in FIX4 else "F")):
            self.exec_id += 1
            er = fix.Message()
            er.getHeader().setField(fix.MsgType("8"))
            er.setField(37, "QF1")
            er.setField(17, str(self.exec_id))  # ExecID is an INT in FIX.4.0
            if self.begin in FIX4:
                er.setField(20, "0")
            if self.begin != "FIX.4.0":  # FIX.4.0 has no ExecType nor LeavesQty
                er.setField(150, exec_type)
            er.setField(39, status)
            for tag in (11, 55, 54, 38):
                if order.isSetField(tag):
                    er.setField(tag, order.getField(tag))
            filled = status == "2"
            qty = order.getField(38) if order.isSetField(38) else "0"
            if self.begin != "FIX.4.0":
                er.setField(151, "0" if filled else qty)
            er.setField(14, qty if filled else "0")
            er.setField(6, "10" if filled else "0")
            if filled:
                er.setField(32, qty)
                er.setField(31, "10")
            elif self.begin in ("FIX.4.0", "FIX.4.1"):  # required on every report there
                er.setField(32, "0")
                er.setField(31, "0")
            fix.Session.sendToTarget(er, sid)

    def count(self, pred):
        with self.lock:
            return sum(1 for r in self.received if pred(r))


def wait_for(pred, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def new_order(begin, cl_ord_id):
    m = fix.Message()
    m.getHeader().setField(fix.MsgType("D"))
    m.setField(11, cl_ord_id)
    m.setField(21, "1")
    m.setField(55, "IBM")
    m.setField(54, "1")
    if begin not in ("FIX.4.0", "FIX.4.1"):
        m.setField(60, time.strftime("%Y%m%d-%H:%M:%S", time.gmtime()))
    m.setField(38, "100")
    m.setField(40, "1")
    return m


def run_reset(args):
    """The initiator again, on the same store, as a daily start of session does it: with
    ResetOnLogon=Y its Logon carries ResetSeqNumFlag=Y and MsgSeqNum 1, and the engine
    starts over with it; then an order and a logout."""
    app = Peer(args.begin, lambda e: None)
    settings = fix.SessionSettings(write_settings(args, "initiator", ["ResetOnLogon=Y"]))
    init = fix.SocketInitiator(app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings))
    checks = {}
    init.start()
    try:
        checks["logon_after_reset"] = app.logged_on.wait(10)
        session = fix.Session.lookupSession(app.session)
        # Both sides started over: QuickFIX sent Logon 1, the engine answered with 1.
        checks["reset_logon_at_one"] = session.getExpectedSenderNum() == 2 and session.getExpectedTargetNum() == 2
        fix.Session.sendToTarget(new_order(args.begin, "A5"), app.session)
        checks["order_after_reset"] = wait_for(lambda: app.count(lambda r: r[0] == "8" and r[1] == "A5" and r[2] in ("2", "F")) >= 1)
        checks["no_reject_after_reset"] = not any(t in ("3", "j", "5") for t in app.admin_in)
    finally:
        init.stop()
    checks["logout_after_reset"] = app.logged_out.wait(10)
    result = {"ok": all(checks.values()), "checks": checks}
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


def run_initiator(args):
    out = []
    app = Peer(args.begin, lambda e: None)
    settings = fix.SessionSettings(write_settings(args, "initiator"))
    init = fix.SocketInitiator(app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings))
    checks = {}
    init.start()
    try:
        checks["logon"] = app.logged_on.wait(10)
        sid = app.session
        session = fix.Session.lookupSession(sid)
        fills = lambda c: app.count(lambda r: r[0] == "8" and r[1] == c and r[2] in ("2", "F"))

        fix.Session.sendToTarget(new_order(args.begin, "A1"), sid)
        checks["order_round_trip"] = wait_for(lambda: fills("A1") >= 1)

        # Gap on our side: skip five sequence numbers; the engine must ask for them and
        # accept QuickFIX's gap fill, then process the order.
        session.setNextSenderMsgSeqNum(session.getExpectedSenderNum() + 5)
        fix.Session.sendToTarget(new_order(args.begin, "A2"), sid)
        checks["engine_requested_resend"] = wait_for(lambda: "2" in app.admin_in)
        checks["order_after_gap_fill"] = wait_for(lambda: fills("A2") >= 1)

        # Gap on the engine's side: forget its last two messages; the engine must resend
        # them with PossDupFlag=Y when asked.
        session.setNextTargetMsgSeqNum(session.getExpectedTargetNum() - 2)
        fix.Session.sendToTarget(new_order(args.begin, "A3"), sid)
        checks["engine_resent_poss_dup"] = wait_for(lambda: app.count(lambda r: r[0] == "8" and r[3]) >= 1)
        checks["order_after_resend"] = wait_for(lambda: fills("A3") >= 1)
        out.append({"next_sender": session.getExpectedSenderNum(), "next_target": session.getExpectedTargetNum()})
        checks["no_reject_before_faults"] = not any(t in ("3", "j") for t in app.admin_in)

        checks.update(send_faults(app, args.begin, sid, fills))
    finally:
        init.stop()
    checks["logout"] = app.logged_out.wait(10)

    checks["no_business_reject_received"] = "j" not in app.admin_in and app.count(lambda r: r[0] == "j") == 0
    out.append({"rejects": app.rejects})
    result = {"ok": all(checks.values()), "checks": checks, "state": out}
    print(json.dumps(result), flush=True)
    if not result["ok"]:
        log_dir = os.path.join(args.workdir, "log")
        for name in sorted(os.listdir(log_dir)) if os.path.isdir(log_dir) else []:
            with open(os.path.join(log_dir, name), errors="replace") as f:
                print(f"--- {name}\n{f.read()[-4000:]}", file=sys.stderr, flush=True)
    return 0 if result["ok"] else 1


# One message per validation fault: (ClOrdID, change, SessionRejectReason, RefTagID). The
# engine must answer each with a session Reject for that message (from FIX.4.2 on with
# the reason and the tag), deliver none of them, and go on.
FAULTS = [
    ("R1", lambda m: m.removeField(40), "1", "40"),  # required tag missing (OrdType)
    ("R2", lambda m: m.setField(37, "X"), "2", "37"),  # tag not defined for the message
    ("R3", lambda m: m.setField(54, "Z"), "5", "54"),  # value out of range
    ("R4", lambda m: m.setField(38, "ABC"), "6", "38"),  # incorrect data format
]


def send_faults(app, begin, sid, fills):
    checks = {}
    for cl_ord_id, change, reason, tag in FAULTS:
        m = new_order(begin, cl_ord_id)
        change(m)
        fix.Session.sendToTarget(m, sid)

        def answered():
            with app.lock:
                seq = app.sent_seq.get(cl_ord_id)
                return [r for r in app.rejects if seq is not None and r[0] == seq]

        checks[f"reject_{cl_ord_id}"] = wait_for(lambda: len(answered()) == 1)
        got = answered()
        if begin not in ("FIX.4.0", "FIX.4.1") and got:
            checks[f"reject_{cl_ord_id}_reason"] = got[0][1:3] == (reason, tag)
    fix.Session.sendToTarget(new_order(begin, "A4"), sid)
    checks["order_after_rejects"] = wait_for(lambda: fills("A4") >= 1)
    checks["rejected_not_delivered"] = not any(fills(c) or app.count(lambda r, c=c: r[1] == c) for c, *_ in FAULTS)
    return checks


class Trader(Peer):
    """Books every order and every admin message that matters to a failover."""

    def __init__(self, begin):
        super().__init__(begin, lambda e: print(json.dumps(e), flush=True))
        self.logons = 0
        self.texts = []  # Logout and Reject texts

    def onLogon(self, sid):
        with self.lock:
            self.logons += 1
        super().onLogon(sid)

    def fromAdmin(self, msg, sid):
        mt = field(msg, 35, header=True)
        if mt in ("5", "3"):
            with self.lock:
                self.texts.append(f"{mt}: {field(msg, 58)}")
        super().fromAdmin(msg, sid)

    def toAdmin(self, msg, sid):
        if field(msg, 35, header=True) == "5" and msg.isSetField(58):
            with self.lock:
                self.texts.append(f"sent 5: {field(msg, 58)}")

    def fromApp(self, msg, sid):
        mt = field(msg, 35, header=True)
        exec_type = field(msg, 150) if msg.isSetField(150) else field(msg, 39)
        with self.lock:
            self.received.append((mt, field(msg, 11), exec_type, field(msg, 43, header=True) == "Y"))


def run_trader(args):
    app = Trader(args.begin)
    settings = fix.SessionSettings(write_settings(args, "trader"))
    init = fix.SocketInitiator(app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings))
    init.start()
    stop = threading.Event()
    sent = []

    def send_orders():
        n = 0
        while not stop.is_set():
            session = fix.Session.lookupSession(app.session) if app.session else None
            if session is not None and session.isLoggedOn():
                n += 1
                cl = f"Q{n}"
                if fix.Session.sendToTarget(new_order(args.begin, cl), app.session):
                    sent.append(cl)
            time.sleep(1.0 / args.rate)

    sender = threading.Thread(target=send_orders, daemon=True)
    sender.start()
    try:
        sys.stdin.read()  # until the test closes our stdin
    finally:
        stop.set()
        sender.join()
    filled = lambda: {r[1] for r in list(app.received) if r[0] == "8" and r[2] in ("2", "F")}
    wait_for(lambda: set(sent) <= filled(), timeout=args.settle)
    done = filled()
    unanswered = [c for c in sent if c not in done]
    session = fix.Session.lookupSession(app.session)
    result = {
        "sent": len(sent),
        "filled": len(done & set(sent)),
        "unanswered": unanswered[:20],
        "unanswered_count": len(unanswered),
        "poss_dup_reports": app.count(lambda r: r[0] == "8" and r[3]),
        "logons": app.logons,
        "texts": app.texts,
        "next_sender": session.getExpectedSenderNum(),
        "next_target": session.getExpectedTargetNum(),
    }
    init.stop()
    print(json.dumps(result), flush=True)
    return 0


def write_settings(args, role, extra=()):
    os.makedirs(args.workdir, exist_ok=True)
    path = os.path.join(args.workdir, f"{role}{len(extra)}.cfg")
    with open(path, "w") as f:
        f.write(settings_text(args, role) + "".join(f"{line}\n" for line in extra))
    return path


def listens_on_loopback_only(port):
    """True when every listening IPv4/IPv6 socket on `port` is bound to loopback."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            local, state = cols[1], cols[3]
            addr, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:
                found.append(addr)
    loopback = {"0100007F", "00000000000000000000000001000000"}
    return bool(found) and all(a in loopback for a in found)


def run_acceptor(args):
    emit = lambda e: print(json.dumps(e), flush=True)
    app = Peer(args.begin, emit)
    app.acceptor = True
    settings = fix.SessionSettings(write_settings(args, "acceptor"))
    acc = fix.SocketAcceptor(app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings))
    acc.start()
    if not listens_on_loopback_only(args.port):
        emit({"event": "error", "reason": f"port {args.port} is not bound to 127.0.0.1 only; run with LD_PRELOAD=loopback_bind.so"})
        acc.stop()
        return 1
    emit({"event": "listening"})
    try:
        sys.stdin.read()  # until the test closes our stdin
    finally:
        acc.stop()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--role", choices=["initiator", "reset", "acceptor", "trader"], required=True)
    p.add_argument("--port", type=int, help="initiator, acceptor: the port")
    p.add_argument("--ports", type=lambda v: [int(x) for x in v.split(",")], default=[], help="trader: every engine's FIX port, in order")
    p.add_argument("--rate", type=float, default=50.0, help="trader: orders per second")
    p.add_argument("--settle", type=float, default=20.0, help="trader: seconds to wait for the last answers")
    p.add_argument("--begin", required=True, help="BeginString; FIX.5.0, FIX.5.0SP1 or FIX.5.0SP2 for FIXT.1.1 with that DefaultApplVerID (FIXT.1.1 alone: 5.0SP2)")
    p.add_argument("--sender", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--dict-dir", required=True)
    p.add_argument("--workdir", required=True)
    args = p.parse_args()
    args.appl = "FIX.5.0SP2"
    if args.begin.startswith("FIX.5."):
        args.appl, args.begin = args.begin, "FIXT.1.1"
    if args.role == "trader":
        return run_trader(args)
    if args.role == "reset":
        return run_reset(args)
    return run_initiator(args) if args.role == "initiator" else run_acceptor(args)


if __name__ == "__main__":
    sys.exit(main())
