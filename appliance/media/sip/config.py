"""The SIP channel's settings: ``[sip]`` in ``parley.toml``, then the command line.

```toml
[sip]
port = 5060                      # host is [appliance] bind_host: loopback unless configured
allow = ["192.0.2.10/32"]        # the PBX; anything else gets 403
max_calls = 16
transfer_target = "2000"         # default: the agent file's escalation.transfer_extension
rtp_ports = [20000, 20998]
registrar = "192.0.2.10:5060"    # register as an extension (optional)
username = "parley"
password_env = "PARLEY_SIP_PASSWORD"   # the password itself never sits in the file
```
"""

import os
import tomllib
from dataclasses import fields

from parley.appliance.config import ConfigError
from parley.appliance.media.sip.server import MediaSettings
from parley.appliance.media.sip.useragent import SipSettings

_SIP_KEYS = {f.name for f in fields(SipSettings)} - {"host", "registrar", "password"}
_MEDIA_KEYS = {f.name for f in fields(MediaSettings)}


def load_sip_settings(settings, **overrides):
    """(SipSettings, MediaSettings) for the appliance ``settings``; ``overrides`` (None: unset)
    win over the file."""
    path = settings.home / "parley.toml"
    values = {}
    if path.is_file():
        try:
            values = dict(tomllib.loads(path.read_text()).get("sip", {}))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = _SIP_KEYS | _MEDIA_KEYS | {"registrar", "password_env"}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"{path}: unknown [sip] keys {sorted(unknown)}; known: {sorted(known)}")
    sip = {k: values[k] for k in _SIP_KEYS if k in values}
    sip.setdefault("port", settings.sip_port)
    for key in ("allow", "codecs"):
        if key in sip:
            sip[key] = tuple(sip[key])
    if "registrar" in values:
        host, _, port = str(values["registrar"]).rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"[sip] registrar must be host:port, not {values['registrar']!r}")
        sip["registrar"] = (host, int(port))
        variable = values.get("password_env", "PARLEY_SIP_PASSWORD")
        sip["password"] = os.environ.get(variable)
        if sip["password"] is None:
            raise ConfigError(f"[sip] registrar is set: put the PBX password in ${variable}")
    media = {k: values[k] for k in _MEDIA_KEYS if k in values}
    if "rtp_ports" in media:
        low, high = media["rtp_ports"]
        if not (1024 <= low < high <= 65534):
            raise ConfigError(f"[sip] rtp_ports must be two ports low < high in 1024-65534, not {media['rtp_ports']}")
        media["rtp_ports"] = (low, high)
    try:
        return SipSettings(host=settings.bind_host, **sip), MediaSettings(**media)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[sip] {exc}") from exc
