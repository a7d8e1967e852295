FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY newsletter ./newsletter
COPY subscribers ./subscribers
COPY worker ./worker
COPY templates ./templates
RUN pip install --no-cache-dir .
RUN useradd --create-home newsletter \
    && mkdir -p /var/lib/newsletter/journal && chown -R newsletter /var/lib/newsletter
USER newsletter
CMD ["newsletter", "--help"]
