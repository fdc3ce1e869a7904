#!/usr/bin/env python3
"""A peer written to the INRIM report "MQTT Based Calibration Service" (T.R. 16/2022).

It follows the report's BaseService design with paho-mqtt 2.x: JSON objects with the
mandatory fields timestamp, UTC, from and to; requestid = from + "-" + timestamp; requests
on "request", replies on "reply", announcements on "announce", stop on "system". It knows
nothing of mqttcal's extensions, so the tests that run it show that mqttcal talks to the
report's nodes in both directions.

Modes:
  node NAME            run a node with the capabilities stop, map, ping, add, echo
  probe TARGET         send map and ping requests to TARGET; print each reply as a JSON line
  stop TARGET          send the report's bare stop message; print TARGET's bye
"""

import argparse
import datetime
import json
import queue
import sys
import time

import paho.mqtt.client as mqtt


class BaseService:
    capabilities = {
        "stop": "Stop the service",
        "map": "List capabilities",
        "ping": "Check whether the node is operating",
    }

    def __init__(self, name, host, port, announce=True):
        self.servicename = name
        self.running = True
        self.replies = queue.Queue()
        self.announces = queue.Queue()
        self.announce = announce
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        self.client.on_connect = self.on_connect
        self.client.on_message = self.on_message
        self.subscribed = queue.Queue()
        self.client.on_subscribe = lambda *a: self.subscribed.put(True)
        self.client.connect(host, port, 60)
        self.client.loop_start()
        self.subscribed.get(timeout=10)
        if announce:
            self.send("announce", "*", message="hello")

    def on_connect(self, client, userdata, flags, reason_code, properties):
        client.subscribe([("system", 0), ("request", 0), ("reply", 0), ("announce", 0)])

    @staticmethod
    def stamp():
        t = time.time()
        utc = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
        return t, utc.strftime("%Y-%m-%d %H:%M:%S.%f")

    def send(self, topic, to, **fields):
        t, utc = self.stamp()
        msg = dict(fields)
        msg.update({"timestamp": t, "UTC": utc, "from": self.servicename, "to": to})
        self.client.publish(topic, json.dumps(msg))
        return t

    def request(self, to, request, **params):
        t, utc = self.stamp()
        msg = dict(params)
        requestid = self.servicename + "-" + str(t)
        msg.update({"timestamp": t, "UTC": utc, "from": self.servicename, "to": to,
                    "request": request, "requestid": requestid})
        self.client.publish("request", json.dumps(msg))
        return requestid

    def reply(self, msg, value):
        self.send("reply", msg["from"], requestid=msg["requestid"], reply=value)

    def on_message(self, client, userdata, m):
        try:
            msg = json.loads(m.payload)
        except ValueError:
            return
        if m.topic == "reply" and msg.get("to") == self.servicename:
            self.replies.put(msg)
        elif m.topic == "announce":
            self.announces.put(msg)
        elif not self.announce:
            return
        elif m.topic == "system" and msg.get("to") in (self.servicename, "*"):
            if msg.get("cmd") == "stop":
                self.stop()
        elif m.topic == "request" and msg.get("to") in (self.servicename, "*"):
            self.handle(msg)

    def handle(self, msg):
        req = msg.get("request")
        if req == "map":
            self.reply(msg, [{"id": k, "description": v} for k, v in self.capabilities.items()])
        elif req == "ping":
            self.reply(msg, "pong")
        elif req == "stop":
            self.reply(msg, "stopping")
            self.stop()
        elif req == "add":
            self.reply(msg, {"sum": msg["a"] + msg["b"]})
        elif req == "echo":
            self.reply(msg, {k: v for k, v in msg.items()
                             if k not in ("timestamp", "UTC", "from", "to", "request", "requestid")})

    def stop(self):
        if self.running:
            self.running = False
            self.send("announce", "*", message="bye")


class Node(BaseService):
    capabilities = dict(BaseService.capabilities, add="Add a and b", echo="Return the parameters")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["node", "probe", "stop"])
    ap.add_argument("name")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--timeout", type=float, default=5.0)
    a = ap.parse_args()

    if a.mode == "node":
        svc = Node(a.name, a.host, a.port)
        print("ready", flush=True)
        while svc.running:
            time.sleep(0.05)
        time.sleep(0.2)
        svc.client.disconnect()
        svc.client.loop_stop()
        return 0

    svc = BaseService("pyprobe", a.host, a.port, announce=False)
    if a.mode == "probe":
        ok = True
        for req in ("map", "ping"):
            rid = svc.request(a.name, req)
            try:
                r = svc.replies.get(timeout=a.timeout)
            except queue.Empty:
                print(json.dumps({"request": req, "sent": rid, "error": "no reply"}), flush=True)
                ok = False
                continue
            print(json.dumps({"request": req, "sent": rid, "reply": r}), flush=True)
            ok = ok and r.get("requestid") == rid
        return 0 if ok else 1

    # The report's stop example: no timestamp, no UTC.
    svc.client.publish("system", json.dumps({"to": a.name, "from": "pyprobe", "cmd": "stop"}))
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        try:
            msg = svc.announces.get(timeout=max(0.01, deadline - time.time()))
        except queue.Empty:
            break
        if msg.get("from") == a.name and msg.get("message") == "bye":
            print(json.dumps(msg), flush=True)
            return 0
    print(json.dumps({"error": "no bye"}), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
