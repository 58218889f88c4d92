"""HTTP/1.1 on asyncio streams for the extension: its two loopback servers and its one client."""
