"""The discipline around the voice loop: agent versions, agent tests and simulations, evaluation
of finished calls, metrics, conversation analysis and the go-live gate."""
