"""Prints the Secrets of required-secrets.yaml as manifests, for `kubectl apply -f -`.

Keys marked `random` get 32 fresh random bytes (base64url); `provider` keys are read from
this process's environment under the key's name, or with `--placeholders` (a test cluster,
no SMS gateway or face-check provider) get a random value too. Nothing is written to disk.

    python deploy/kubernetes/create_secrets.py --namespace healthcode | kubectl apply -f -
"""

import argparse
import base64
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import yaml

REQUIRED = Path(__file__).with_name("required-secrets.yaml")


def random_value() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def make_secrets(
    namespace: str, placeholders: bool, environ: dict[str, str]
) -> list[dict[str, Any]]:
    required = yaml.safe_load(REQUIRED.read_text())["secrets"]
    made = []
    missing = []
    for name, spec in required.items():
        data: dict[str, str] = {}
        for key, source in spec["keys"].items():
            if source == "random" or (source == "provider" and placeholders):
                data[key] = random_value()
            elif source == "provider":
                if key not in environ:
                    missing.append(key)
                    continue
                data[key] = environ[key]
            else:
                data[key] = str(source)
        made.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace},
                "type": spec["type"],
                "stringData": data,
            }
        )
    if missing:
        raise SystemExit("set these in the environment (or --placeholders): " + ", ".join(missing))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="healthcode")
    parser.add_argument("--placeholders", action="store_true")
    args = parser.parse_args()
    made = make_secrets(args.namespace, args.placeholders, dict(os.environ))
    yaml.safe_dump_all(made, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
