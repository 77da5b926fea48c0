"""The chain layer: what lepton-ledger sends to and reads from its contracts.

Modules, one job each: ``merkle`` builds the payout and batched-commitment trees the contracts verify,
``typed_data`` builds the EIP-712 digests partners sign, and the client modules (artifacts, deployment,
transactions, anvil launcher) talk to a node through web3.py. None of them imports brownie, and importing this
package imports none of them, so ``import lepton_ledger.chain.merkle`` stays cheap.
"""
