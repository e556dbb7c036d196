"""The appliance's services: media, speech, agent, platform, bus, store and the `parley` CLI."""
