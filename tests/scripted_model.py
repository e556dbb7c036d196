"""A deterministic stand-in for the LLM engine: unit tests of the agent's own logic (orchestrator,
agent tests, judge) pin behaviour exactly with it; the real model has tests of its own."""

import json


class ScriptedModel:
    """Replays replies in order, in small pieces as a streaming model would; records prompts and
    the grammar (here: the JSON Schema itself) each reply was asked under."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.prompts = []
        self.grammars = []
        self.seed = 0

    def grammar(self, schema):
        return schema

    def choice_grammar(self, options):
        return options

    def stream(self, prompt, *, grammar=None, max_tokens=160, temperature=0.0, cancelled=None):
        self.prompts.append(prompt)
        self.grammars.append(grammar)
        reply = self.replies.pop(0)
        text = reply if isinstance(reply, str) else json.dumps(reply)
        for i in range(0, len(text), 7):
            yield text[i:i + 7]


    def stream_action(self, prompt, schema, *, max_tokens=160, temperature=0.0, cancelled=None):
        return self.stream(prompt, grammar=schema, max_tokens=max_tokens, temperature=temperature, cancelled=cancelled)


def say(text):
    return {"action": "say", "text": text}


def call(tool, **arguments):
    return {"action": tool, "arguments": arguments}
