"""An uploaded trace file: checked for size and type, then saved where only this session reads it.

A file is saved under the hash of its content plus its original extension, inside a temporary
folder made for the session. Cached figures are keyed on that path, so two different files can
never share a cache entry, and one user's file is never read through another user's path.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

from traces.errors import TraceError

DEFAULT_MAX_UPLOAD_MB = 200  # the same default as `servesim app --max-upload-mb`
SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".pq")
FOLDER_KEY = "traces_upload_folder"  # session state: this session's temporary folder
SAVED_KEY = "traces_saved_uploads"  # session state: upload id -> saved path (hash once per file)

# What each format expects, for messages about a file that cannot be read.
FORMAT_GUIDE = {
    "azure": "CSV with columns TIMESTAMP, ContextTokens, GeneratedTokens",
    "splitwise": "CSV with columns arrived_at (s), num_prefill_tokens, num_decode_tokens",
    "burstgpt": "CSV with columns Timestamp (s), Request tokens, Response tokens "
                "(optional Model, Log Type, Session ID)",
    "mooncake": "JSON lines with keys timestamp (ms), input_length, output_length, hash_ids",
    "llmservingsim": "JSON lines with keys arrival_time_ns, input_toks, output_toks, "
                     "input_tok_ids",
    "vllm_bench": "one JSON object with input_lens, output_lens, start_times "
                  "(vllm bench serve --save-result --save-detailed)",
    "normalized": "Parquet written by `servesim traces convert`",
    "generic": "any CSV, JSON-lines or Parquet file: name its arrival, input and output columns",
}


def max_upload_mb() -> int:
    """The upload limit in MB: what `servesim app` set for this server, else the default."""
    try:
        value = int(os.environ.get("SERVESIM_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB))
    except ValueError:
        return DEFAULT_MAX_UPLOAD_MB
    return value if value >= 1 else DEFAULT_MAX_UPLOAD_MB


def formats_help() -> str:
    """The accepted formats and their columns, one per line (Markdown list)."""
    return "\n".join(f"- **{name}**: {text}" for name, text in FORMAT_GUIDE.items())


def check_upload(name: str, size: int, limit_mb: int) -> None:
    """Refuse a file that is too big, empty or of a type no format reads; the message says
    what to do instead. Raises TraceError."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise TraceError(
            f"{name}: {suffix or 'no extension'} is not a trace file type; upload a "
            f"{', '.join(SUFFIXES)} file (CSV, JSON lines, a vLLM benchmark JSON or Parquet)"
        )
    if size == 0:
        raise TraceError(
            f"{name}: the file is empty; a trace needs a header (CSV) or one request per line "
            "(JSON lines), with an arrival time and input and output token counts per request"
        )
    if size > limit_mb * 1_000_000:
        raise TraceError(
            f"{name}: the file is {size / 1e6:,.1f} MB, over this server's {limit_mb:,} MB "
            "upload limit; upload a time window of it, convert it to Parquet first (`servesim "
            "traces convert FILE OUT.parquet`, several times smaller), start the app with a "
            "higher limit (`servesim app --max-upload-mb N`), or use `servesim traces info` "
            "on the command line"
        )


def saved_name(data: bytes, name: str) -> str:
    """The content's hash plus the original (lower-case) extension."""
    return hashlib.sha256(data).hexdigest()[:32] + Path(name).suffix.lower()


def save_upload(data: bytes, name: str, folder: Path) -> Path:
    """Write the bytes under ``folder`` by content hash (once: same bytes, same file)."""
    path = folder / saved_name(data, name)
    if not path.is_file() or path.stat().st_size != len(data):
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(data)
        partial.replace(path)  # a reader never sees half a file
    return path


def session_folder(state: MutableMapping) -> Path:
    """This session's temporary folder for uploads (made on first use, again if deleted)."""
    folder = state.get(FOLDER_KEY)
    if folder is None or not Path(folder).is_dir():
        folder = tempfile.mkdtemp(prefix="servesim-traces-")
        state[FOLDER_KEY] = folder
    return Path(folder)


def store_upload(upload, state: MutableMapping, limit_mb: int | None = None) -> Path:
    """Check an uploaded file (Streamlit's UploadedFile) and save it for this session; the
    same upload is hashed only once. Raises TraceError naming the problem and the fix."""
    limit = max_upload_mb() if limit_mb is None else limit_mb
    check_upload(upload.name, upload.size, limit)
    saved = state.setdefault(SAVED_KEY, {})
    key = f"{upload.file_id}:{upload.name}:{upload.size}"
    path = saved.get(key)
    if path is None or not Path(path).is_file():
        path = save_upload(upload.getvalue(), upload.name, session_folder(state))
        saved[key] = path
    return Path(path)
