"""The agent orchestrator: agent files, the LLM, tools under governance, the knowledge base."""
