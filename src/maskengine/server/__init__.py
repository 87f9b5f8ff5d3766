"""The annotation server (FastAPI): routes -> deps -> engine services; static web page."""
