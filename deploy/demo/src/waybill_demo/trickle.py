"""A trickle of demo orders for `make run`, so there is always something flowing."""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request

from waybill_demo.scenario import SKUS


def trickle_orders(
    odoo_url: str, every_s: float, stop: threading.Event, *, seed: int = 1
) -> threading.Thread:
    """Create an order in the Odoo sandbox every ``every_s`` seconds until ``stop`` is set."""
    rng = random.Random(seed)

    def loop() -> None:
        while not stop.wait(every_s):
            lines = [{"sku": sku, "quantity": rng.randint(1, 3)} for sku in rng.sample(SKUS, 2)]
            request = urllib.request.Request(
                f"{odoo_url}/_sandbox/odoo/orders",
                data=json.dumps({"lines": lines}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    order = json.loads(response.read())
                print(f"demo order {order['name']} released as {order['pickings'][0]}", flush=True)
            except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
                print(f"demo order not created: {error}", flush=True)

    thread = threading.Thread(target=loop, name="demo orders", daemon=True)
    thread.start()
    return thread
