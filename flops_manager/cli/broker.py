"""The embedded stack's MQTT broker: Mosquitto when installed, else amqtt in its own venv.

Mosquitto runs with its dynamic security plugin when the plugin is installed (Debian ships it):
nobody is anonymous, the manager gets a fresh administrator login at every start
(:func:`manager_broker_env`, kept in a 0600 file next to the broker's configuration) and creates
one login per enrolled component, limited to its project's topics of its role. amqtt enforces
the same rules through FLOps' plugins (:mod:`flops_manager.adapters.amqtt_policy`), reading a
policy file that the manager keeps (:class:`~flops_manager.adapters.file_broker_accounts.
PolicyFileBrokerAccounts`).

amqtt is a pure-Python MQTT 3.1.1 broker (FLOps speaks 3.1.1). Its pinned dependencies clash
with Flower's, so it lives in a private virtual environment under the data directory, created
with ``pip`` on first use (about 10 s). ``FLOPS_BROKER=mosquitto|amqtt|auto`` chooses.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import subprocess
import sys
import venv
from collections.abc import Mapping
from pathlib import Path

from flops_contracts.errors import FlopsError

AMQTT_REQUIREMENT = "amqtt==0.12.1"
INSTALL_TIMEOUT_S = 600.0


def mosquitto_binary() -> str | None:
    """The Mosquitto executable, if installed (also where Debian puts it: /usr/sbin)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


MANAGER_LOGIN_FILE = "manager-login.json"
MANAGER_USERNAME = "flops-manager"
DYNSEC_FILE = "dynamic-security.json"


def dynsec_plugin() -> str | None:
    """Mosquitto's dynamic security plugin, if installed."""
    return next(iter(sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so"))), None)


def mosquitto_config(port: int, directory: Path, *, as_root: bool,
                     plugin: str | None = None) -> str:
    """Mosquitto configuration: loopback listener, persistence, a large in-flight queue.

    With ``plugin`` (the dynamic security plugin), access is by login only (``DYNSEC_FILE``).
    """
    access = ["allow_anonymous true"] if plugin is None else [
        "allow_anonymous false", f"plugin {plugin}",
        f"plugin_opt_config_file {directory / DYNSEC_FILE}"]
    lines = [f"listener {port} 127.0.0.1", *access, "persistence true",
             f"persistence_location {directory}/", "max_queued_messages 100000"]
    if as_root:
        lines.append("user root")
    return "\n".join(lines) + "\n"


AMQTT_PLUGIN_MODULE = "flops_amqtt_policy"
POLICY_FILE = "broker-policy.json"


def amqtt_config(port: int, policy_file: Path) -> str:
    """Return the amqtt configuration: loopback listener, logins and topics by FLOps' plugins."""
    source = json.dumps(str(policy_file))
    return (
        "listeners:\n  default:\n    type: tcp\n"
        f"    bind: 127.0.0.1:{port}\n"
        "plugins:\n"
        f"  {AMQTT_PLUGIN_MODULE}.FlopsAuthPlugin:\n    policy_file: {source}\n"
        f"  {AMQTT_PLUGIN_MODULE}.FlopsTopicPlugin:\n    policy_file: {source}\n"
    )


def install_amqtt_plugin(venv_dir: Path) -> Path:
    """Copy FLOps' policy plugins into amqtt's venv (every start: the current version).

    Raises
    ------
    FlopsError
        If the venv has no site-packages directory.
    """
    from flops_manager.adapters import amqtt_policy

    found = sorted(venv_dir.glob("lib/python*/site-packages"))
    if not found:
        raise FlopsError(f"{venv_dir} has no site-packages: delete it to reinstall amqtt")
    target = found[-1] / f"{AMQTT_PLUGIN_MODULE}.py"
    shutil.copyfile(amqtt_policy.__file__, target)
    return target


def ensure_amqtt(venv_dir: Path) -> Path:
    """Return the ``amqtt`` executable of ``venv_dir``, creating the venv on first use.

    Raises
    ------
    FlopsError
        If the venv or the install fails (the message names pip's last output).
    """
    binary = venv_dir / "bin" / "amqtt"
    if binary.exists():
        return binary
    print(f"no Mosquitto found: installing the amqtt broker into {venv_dir} (once)",
          file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    try:
        subprocess.run(  # noqa: S603 - fixed argv
            [str(venv_dir / "bin" / "python"), "-m", "pip", "install", "--quiet",
             AMQTT_REQUIREMENT], check=True, capture_output=True, text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as exc:
        raise FlopsError(f"installing {AMQTT_REQUIREMENT} failed: {exc.stderr.strip()[-500:]}; "
                         "install Mosquitto instead (apt-get install mosquitto)") from None
    except subprocess.TimeoutExpired:
        raise FlopsError(
            f"installing {AMQTT_REQUIREMENT} took over {INSTALL_TIMEOUT_S:.0f}s"
        ) from None
    return binary


def broker_command(
    directory: Path, port: int, environ: Mapping[str, str] | None = None
) -> tuple[str, list[str]]:
    """Write the chosen broker's configuration and return ``(kind, argv)``.

    Raises
    ------
    FlopsError
        If ``FLOPS_BROKER`` is invalid or asks for Mosquitto where there is none.
    """
    env = os.environ if environ is None else environ
    choice = env.get("FLOPS_BROKER", "auto")
    if choice not in ("auto", "mosquitto", "amqtt"):
        raise FlopsError(f"FLOPS_BROKER={choice!r}: use auto, mosquitto or amqtt")
    directory.mkdir(parents=True, exist_ok=True)
    mosquitto = mosquitto_binary() if choice != "amqtt" else None
    if mosquitto is not None:
        plugin = dynsec_plugin()
        if plugin is not None:
            _write_manager_login(directory)
        else:
            (directory / MANAGER_LOGIN_FILE).unlink(missing_ok=True)
        conf = directory / "mosquitto.conf"
        conf.write_text(mosquitto_config(port, directory, as_root=os.geteuid() == 0,
                                         plugin=plugin), encoding="utf-8")
        return "mosquitto", [mosquitto, "-c", str(conf)]
    if choice == "mosquitto":
        raise FlopsError("FLOPS_BROKER=mosquitto but Mosquitto is not installed")
    binary = ensure_amqtt(directory / "amqtt-venv")
    install_amqtt_plugin(directory / "amqtt-venv")
    _write_amqtt_manager_login(directory)
    conf = directory / "amqtt.yaml"
    conf.write_text(amqtt_config(port, directory / POLICY_FILE), encoding="utf-8")
    return "amqtt", [str(binary), "-c", str(conf)]


def _private_write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _write_manager_login(directory: Path) -> None:
    """A fresh administrator login: the plugin's first configuration and the manager's copy."""
    from flops_manager.adapters.mosquitto_dynsec import initial_config

    password = secrets.token_urlsafe(24)
    config = initial_config(MANAGER_USERNAME, password, salt=os.urandom(12))
    _private_write(directory / DYNSEC_FILE, json.dumps(config))
    _private_write(directory / MANAGER_LOGIN_FILE, json.dumps(
        {"username": MANAGER_USERNAME, "password": password, "accounts": "mosquitto-dynsec"}))


def _write_amqtt_manager_login(directory: Path) -> None:
    """A fresh policy file holding only the manager's administrator login, and its copy."""
    from flops_manager.adapters.amqtt_policy import empty_policy, login_entry

    password = secrets.token_urlsafe(24)
    policy = empty_policy()
    policy["logins"][MANAGER_USERNAME] = login_entry(password, salt=os.urandom(12), admin=True)
    _private_write(directory / POLICY_FILE, json.dumps(policy))
    _private_write(directory / MANAGER_LOGIN_FILE, json.dumps(
        {"username": MANAGER_USERNAME, "password": password, "accounts": "amqtt-policy",
         "policy_file": str(directory / POLICY_FILE)}))


def manager_broker_env(directory: Path) -> dict[str, str]:
    """The manager's broker settings for the broker configured in ``directory``.

    Empty for an anonymous broker (Mosquitto without its dynamic security plugin); otherwise
    the administrator login and how per-component broker accounts are made: through the
    dynamic security plugin, or amqtt's policy file.
    """
    path = directory / MANAGER_LOGIN_FILE
    if not path.exists():
        return {}
    login = json.loads(path.read_text(encoding="utf-8"))
    env = {"FLOPS_MQTT_USERNAME": login["username"], "FLOPS_MQTT_PASSWORD": login["password"],
           "FLOPS_BROKER_ACCOUNTS": login.get("accounts", "mosquitto-dynsec")}
    if login.get("policy_file"):
        env["FLOPS_BROKER_POLICY_FILE"] = login["policy_file"]
    return env
