"""The Python side of test_registry_processes.py, as a process of its own: a Manager registered in a
registry, with a pong actor under --name (answers Ping{count} with Pong{count}) and, with
--lookup, a pinger that finds that name in the registry and sends it --count Pings.

Prints "registry_py_peer: registered NAME at ENDPOINT as ID", then with --lookup
"registry_py_peer: found NAME at ENDPOINT" and "registry_py_peer: pongs N from NAME"; runs
until SIGTERM (or exits with --exit). Exit status: 0 ok, 1 the registry did not answer,
3 the name is taken, 4 lookup or Pongs failed.

--curve-key FILE --allow-dir DIR --registry-key FILE: the Manager runs CURVE with that key
pair and allow directory, and so does its registry connection (registry_server_key, the
registry's public certificate); lookups then use the key the peer registered.
"""
import argparse
import threading
import time

import tern


@tern.register_message
class Ping:
    def __init__(self, count: int):
        self.count = count


@tern.register_message
class Pong:
    def __init__(self, count: int):
        self.count = count


class PongActor(tern.Actor):
    def on_ping(self, msg, sender):
        self.reply(Pong(msg.count))


class Pinger(tern.Actor):
    def __init__(self):
        self.pongs = 0
        self.cond = threading.Condition()

    def on_pong(self, msg):
        with self.cond:
            self.pongs += 1
            self.cond.notify_all()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--registry", required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--manager-id")
    p.add_argument("--lookup")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--wait-s", type=float, default=20.0)
    p.add_argument("--exit", action="store_true")
    p.add_argument("--timeout", type=float, default=5.0, help="per registry request, s")
    p.add_argument("--curve-key")
    p.add_argument("--allow-dir")
    p.add_argument("--registry-key")
    a = p.parse_args()

    extra = {}
    if a.curve_key:
        extra["curve"] = tern.CurveConfig(a.curve_key, a.allow_dir)
    if a.registry_key:
        extra["registry_server_key"] = tern.security.load_public_key(a.registry_key)
    mgr = tern.Manager(a.endpoint, registry=a.registry, manager_id=a.manager_id,
                       registry_timeout=a.timeout, **extra)
    mgr.manage(a.name, PongActor())
    pinger = Pinger()
    mgr.manage("py-pinger", pinger)
    try:
        mgr.init()
    except tern.NameTaken as exc:
        print(f"registry_py_peer: name taken: {exc}", flush=True)
        return 3
    except tern.RegistryError as exc:
        print(f"registry_py_peer: {exc}", flush=True)
        return 1
    print(f"registry_py_peer: registered {a.name} at {mgr.advertised_endpoint} as "
          f"{mgr.manager_id}", flush=True)
    status = 0
    try:
        if a.lookup:
            deadline = time.monotonic() + a.wait_s
            ref, last = None, None
            while ref is None and time.monotonic() < deadline:
                try:
                    ref = mgr.lookup_remote(a.lookup)
                except tern.RegistryError as exc:  # NotFound / Offline until the peer is up
                    last = exc
                    time.sleep(0.1)
            if ref is None:
                print(f"registry_py_peer: lookup failed: {last}", flush=True)
                status = 4
            else:
                print(f"registry_py_peer: found {a.lookup} at {ref.endpoint}", flush=True)
                for i in range(1, a.count + 1):
                    ref.send(Ping(i), sender=pinger.self_ref)
                with pinger.cond:
                    pinger.cond.wait_for(lambda: pinger.pongs >= a.count,
                                         max(0.1, deadline - time.monotonic()))
                    got = pinger.pongs
                print(f"registry_py_peer: pongs {got} from {a.lookup}", flush=True)
                if got < a.count:
                    status = 4
        if not a.exit:
            mgr.run()
    finally:
        mgr.end()
    print("registry_py_peer: stopped", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
