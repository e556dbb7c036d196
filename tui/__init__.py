"""The Textual operator console (versions, tests, rollouts, latency traces)."""
