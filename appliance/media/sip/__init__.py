"""The SIP user agent: messages, transactions, dialogs, SDP."""
