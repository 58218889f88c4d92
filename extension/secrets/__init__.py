"""OTLP headers from AWS Secrets Manager or SSM Parameter Store, fetched with a small SigV4 signer (no botocore).

Import from the modules: this file imports nothing, so `settings` (the standard library alone) can be parsed
during the fast start, before asyncio and orjson are loaded. The shell's whole API:

    from extension.secrets.settings import SecretSettings    # stdlib only; the settings table is there
    from extension.secrets.cache import HeaderCache           # pure
    from extension.secrets.resolve import resolve_headers     # asyncio, extension.http

    settings = SecretSettings.from_env(env)          # None when no secret is configured; ConfigError if invalid
    cache = HeaderCache(refresh_s=settings.refresh_s)
    if cache.begin(time.time()):                     # at INIT, and later whenever a refresh is due
        result = await resolve_headers(settings, session, env=env)
        if cache.record(result, time.time()):        # True for the first failure, a new failure, a recovery
            log.error("secret_fetch_failed", **result.log_fields())  # or info("secret_fetched", ...)
    headers = cache.merged(signal.headers)           # the secret's headers over the configured ones
"""
