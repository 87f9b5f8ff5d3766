"""API routes: thin functions that parse, call one service, and answer."""
