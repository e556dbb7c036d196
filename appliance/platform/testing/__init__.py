"""Agent tests: test files, the runner (through the orchestrator callers use), judge, stored
results and their statistics, tests written from calls, and judge agreement."""
