"""`audioldm ui`, the local web page: session.py holds the request logic (a :class:`Session` per model: validation,
generation, editing, the files it writes), page.py the Gradio page that calls it. Gradio is imported by page.py only."""
