"""The web page, one module per tab (A1111's layout): `app.py` builds it (`build_ui`), `fields.py` is the
Generate form's field table (the form, the API, Load settings and Re-run), `components.py` the page's own
components, `progress.py` the progress panel, `jobs.py` the job board that runs Generate clicks one at a
time on the shared `Generator`. Nothing here imports torch or loads a model; importing this package
imports nothing (not even gradio) until a module of it is imported.
"""
