"""`[sip]` in parley.toml: what `parley serve` reads, with clear errors for what it cannot use."""

import pytest

from parley.appliance.config import ConfigError, Settings
from parley.appliance.media.sip.config import load_sip_settings


def settings_with(tmp_path, text):
    (tmp_path / "parley.toml").write_text(text)
    return Settings(home=tmp_path)


def test_defaults_bind_to_loopback_and_allow_only_loopback(tmp_path):
    sip, media = load_sip_settings(Settings(home=tmp_path))
    assert (sip.host, sip.port, sip.max_calls) == ("127.0.0.1", 5060, 16)
    assert sip.allows("127.0.0.1") and not sip.allows("192.0.2.10") and not sip.allows("not an address")
    assert sip.registrar is None and media.transfer_target is None


def test_the_file_then_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PBX_SECRET", "s3cret")
    settings = settings_with(tmp_path, '[sip]\nport = 5070\nallow = ["192.0.2.0/24"]\nmax_calls = 4\n'
                                       'registrar = "192.0.2.10:5060"\nusername = "agent"\npassword_env = "PBX_SECRET"\n'
                                       'transfer_target = "2000"\nrtp_ports = [40000, 40100]\n')
    sip, media = load_sip_settings(settings, max_calls=8, transfer_target=None)
    assert (sip.port, sip.max_calls, sip.username, sip.password) == (5070, 8, "agent", "s3cret")
    assert sip.registrar == ("192.0.2.10", 5060) and sip.allows("192.0.2.77") and not sip.allows("127.0.0.1")
    assert media.transfer_target == "2000" and media.rtp_ports == (40000, 40100)


@pytest.mark.parametrize("text, message", [
    ("[sip]\nprot = 5060\n", "unknown [sip] keys ['prot']"),
    ('[sip]\nregistrar = "pbx"\n', "registrar must be host:port"),
    ('[sip]\nregistrar = "192.0.2.10:5060"\npassword_env = "PARLEY_TEST_UNSET_VARIABLE"\n', "$PARLEY_TEST_UNSET_VARIABLE"),
    ("[sip]\nrtp_ports = [5000, 4000]\n", "rtp_ports must be two ports"),
    ('[sip]\nallow = ["not a network"]\n', "[sip]"),
    ("[sip\n", "parley.toml"),
])
def test_what_cannot_be_used_is_named(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_sip_settings(settings_with(tmp_path, text))
    assert message in str(error.value)
