"""Drives a coresh console with netmiko's cisco_ios driver, as automation does, and
prints what it saw as one JSON object (tests/netmiko.rs checks it).

Usage: drive.py PORT KEY_FILE ENABLE_SECRET
"""

import json
import sys

from netmiko import ConnectHandler

port, key_file, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
seen = {}
c = ConnectHandler(device_type="cisco_ios", host="127.0.0.1", port=port, username="admin", use_keys=True,
                   key_file=key_file, allow_agent=False, secret=secret, timeout=20)
try:
    seen["prompt"] = c.find_prompt()
    c.enable()
    seen["enable_prompt"] = c.find_prompt()
    seen["show_failover"] = c.send_command("show failover")
    seen["show_failover_json"] = json.loads(c.send_command("show failover | json"))
    seen["invalid"] = c.send_command("show bogus")
    seen["config_set"] = c.send_config_set(["hostname core-z", "audit retention 400 days"])
    # The host name changed: netmiko learns the new prompt, as it must with IOS.
    c.set_base_prompt()
    seen["prompt_after_config"] = c.find_prompt()
    seen["save"] = c.save_config()
    seen["running_config"] = c.send_command("show running-config")
    seen["terminal"] = c.send_command("show terminal")
finally:
    c.disconnect()
print(json.dumps(seen))
