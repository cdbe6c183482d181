# Dreamwalkers: python -m bot run, with migrations applied at start.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATABASE_URL=sqlite+aiosqlite:////app/data/dreamwalkers.db

RUN useradd --create-home --uid 10001 dreamwalkers
WORKDIR /app

# Dependencies first so that code changes do not reinstall them.
COPY pyproject.toml README.md ./
COPY bot/__init__.py bot/__init__.py
COPY engine/__init__.py engine/__init__.py
RUN pip install .

COPY . .
# Editable, so migrations (alembic/) are found next to the code.
RUN pip install --no-deps -e . && mkdir -p /app/data && chown dreamwalkers /app/data

USER dreamwalkers
VOLUME ["/app/data"]
CMD ["python", "-m", "bot", "run"]
