#!/usr/bin/env python3
"""Send one order through the engine's Kafka bridge and print its execution reports.

The engine runs with app = "kafka" (see engine/engine/README.md, "Kafka bridge"). This
client writes a NewOrderSingle as a raw FIX string to the outbound topic (the engine
sends it on the session whose SenderCompID / TargetCompID it names, and fills in
BodyLength, MsgSeqNum, SendingTime and CheckSum), then reads the inbound topic until the
order is filled or the time is up. It needs only confluent-kafka:

    pip install confluent-kafka
    python3 examples/kafka_order.py --brokers 127.0.0.1:9092 --sender ENGINE --target QF

Exits 0 once the order is filled, 1 otherwise.
"""
import argparse
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_END

SOH = "\x01"


def fields(raw):
    """A FIX string's fields as a dict (last one wins)."""
    out = {}
    for f in raw.split(SOH):
        tag, _, value = f.partition("=")
        if tag:
            out[tag] = value
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--brokers", default="127.0.0.1:9092")
    p.add_argument("--begin-string", default="FIX.4.4")
    p.add_argument("--sender", default="ENGINE", help="the engine's SenderCompID on the session")
    p.add_argument("--target", default="QF", help="the counterparty's CompID")
    p.add_argument("--outbound-topic", default="TO-FIX-ENGINE")
    p.add_argument("--inbound-topic", default="FROM-FIX-ENGINE")
    p.add_argument("--symbol", default="IBM")
    p.add_argument("--quantity", default="100")
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()

    # Read the inbound topic from its current end, so only this order's reports show.
    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": f"kafka-order-{uuid.uuid4()}",
        "enable.auto.commit": False,
    })
    consumer.assign([TopicPartition(args.inbound_topic, 0, OFFSET_END)])
    consumer.poll(0.5)

    cl_ord_id = f"PY-{uuid.uuid4().hex[:12]}"
    now = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime())
    order = SOH.join([
        f"8={args.begin_string}", "35=D", f"49={args.sender}", f"56={args.target}",
        f"11={cl_ord_id}", "21=1", f"55={args.symbol}", "54=1", f"60={now}",
        f"38={args.quantity}", "40=1",
    ]) + SOH
    producer = Producer({"bootstrap.servers": args.brokers, "enable.idempotence": True})
    producer.produce(args.outbound_topic, value=order.encode())
    if producer.flush(10) != 0:
        print(f"the order did not reach {args.outbound_topic} on {args.brokers}", file=sys.stderr)
        return 1
    print(f"sent NewOrderSingle {cl_ord_id} ({args.quantity} {args.symbol}) to {args.outbound_topic}")

    deadline = time.time() + args.timeout
    while time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        f = fields(msg.value().decode(errors="replace"))
        if f.get("35") != "8" or f.get("11") != cl_ord_id:
            continue
        headers = dict(msg.headers() or [])
        dedup = headers.get("fix-dedup-key", b"").decode()
        print(f"ExecutionReport ExecType={f.get('150')} OrdStatus={f.get('39')} "
              f"CumQty={f.get('14')} AvgPx={f.get('6')} (dedup key {dedup})")
        if f.get("39") == "2":
            print("filled")
            consumer.close()
            return 0
    print(f"no fill for {cl_ord_id} within {args.timeout:.0f} s", file=sys.stderr)
    consumer.close()
    return 1


if __name__ == "__main__":
    sys.exit(main())
