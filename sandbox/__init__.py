"""The sandbox: a local stand-in for Webex Connect's outbound voice API ("Make Call").

It answers ``POST /v2/messages`` and ``GET /v2/messages/{messageId}`` as
``/work/shared/platform-contract.md`` documents them (error codes, ``key`` auth, 409 on a
repeated correlation id, 429/7020 over the TPS limit), injects faults on demand, POSTs the
documented callback sequences (irregularities included) to ``notifyUrl``, and keeps a ledger of
everything it received and sent so tests can prove each call was placed exactly once.
See ``docs/sandbox.md``.
"""
