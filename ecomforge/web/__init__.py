"""Web UI and HTTP API (``ecomforge serve``). FastAPI and Gradio are imported only inside this package."""
