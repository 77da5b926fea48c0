"""Round orchestration: the coordinator's and the partners' steps, and the durable outbox through which every
side effect (IPFS put, transaction) goes so that a crash at any point loses nothing and repeats nothing."""
