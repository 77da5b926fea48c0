"""The ledger service, ``lepton-ledger serve``: the library's calls over HTTP (FastAPI).

- app.py: ``create_app(settings)``, the factory; service.py: what one running service holds (chain, deployment,
  store, database, read model); readmodel.py: chain views refreshed once per block; auth.py: sign-in with
  Ethereum (EIP-4361) and bearer tokens; db.py: the service's SQLite; errors.py: one JSON error shape;
  deps.py: the ``Annotated`` dependencies routes share; routes/: one ``APIRouter`` per resource.

Nothing here re-implements the library: routes call ``lepton_ledger.chain``, ``rounds``, ``rounds.roles`` and
``protocol``, and turn their named errors into status codes (errors.py).
"""
