"""`curate view`: a read-only web page over the trace store (needs the `view` extra: starlette, jinja2, uvicorn).

app.py is the Starlette application, pages.py what each page shows, mixtures.py how mixtures are found,
export.py the static copy (`curate view --export DIR`); the SQL lives in curate/store/view_queries.py.
"""
