"""The project store: a folder with `project.json`, a database and caches.

    PROJECT/
      project.json      ProjectConfig (images folder, database URL, validation share)
      store.db          SQLite database (default; any SQLAlchemy URL by --db)
      cache/embeddings/ image embeddings per model version (fp16, see embeddings.py)
      admin_token       the first admin's API token (mode 0600), for `maskengine serve`

The schema is made by Alembic migrations (`migrations/versions`), run on init and on every
open, so an older project is brought up to date before use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from PIL import Image as PILImage
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from ..atomic import write_atomic
from ..image_files import IMAGE_SUFFIXES
from .models import Image, Role, User

PROJECT_FILE = "project.json"


class ProjectError(ValueError):
    """A project folder that is missing, not a project, or already one."""


@dataclass(frozen=True)
class ProjectConfig:
    """What `project.json` holds. `images_dir` is absolute or relative to the project."""

    images_dir: str
    db_url: str = ""  # empty: sqlite file store.db in the project folder
    val_fraction: float = 0.1  # share of images put in the "val" split (by content hash)

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL lets the page read while a save is written; FULL sync makes a committed accept
    # survive a crash of the server process (and of the machine).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(eng, "connect", _sqlite_pragmas)
        return eng
    return create_engine(url, pool_pre_ping=True)


def migrate(db_engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to `revision` with the packaged Alembic migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent / "migrations"))
    with db_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class AddResult:
    added: int = 0
    duplicates: int = 0
    unreadable: list[str] = dataclasses.field(default_factory=list)
    reasons: dict[str, str] = dataclasses.field(default_factory=dict)  # path -> why

    def skip(self, path: str, reason: str) -> None:
        self.unreadable.append(path)
        self.reasons[path] = reason


def scan_images(folder: Path, result: AddResult) -> list[Path]:
    """Image files under `folder`, recursively, resolved. Links to folders are not
    followed (no loops); an entry that cannot be read (a link loop, a dangling link, a
    folder without permission) goes to `result` with the reason and the scan goes on."""
    found = []

    def on_error(exc: OSError) -> None:
        result.skip(str(exc.filename), f"cannot list folder: {exc.strerror or exc}")

    for top, _dirs, names in os.walk(folder, onerror=on_error, followlinks=False):
        for name in sorted(names):
            if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(top) / name
            try:
                found.append(path.resolve(strict=True))
            except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop (Python<3.13)
                why = "link loop" if "loop" in str(exc).lower() else "dangling link"
                result.skip(str(path), f"{why}: {exc}")
    return found


class Project:
    """An open project: its folder, settings and database. Use `Project.open(path)`."""

    def __init__(self, root: Path, config: ProjectConfig, db_engine: Engine) -> None:
        self.root = root
        self.config = config
        self.db_engine = db_engine  # SQLAlchemy's
        self._sessions = sessionmaker(db_engine, expire_on_commit=False)

    @classmethod
    def open(cls, root: str | os.PathLike, db_url: str | None = None) -> Project:
        root = Path(root).resolve()
        file = root / PROJECT_FILE
        if not file.is_file():
            raise ProjectError(f"{root} is not a maskengine project (no {PROJECT_FILE}); "
                               f"create one with `maskengine init {root} --images DIR`")
        config = ProjectConfig(**json.loads(file.read_text()))
        url = db_url or config.db_url or f"sqlite:///{root / 'store.db'}"
        db_engine = make_engine(url)
        migrate(db_engine)
        return cls(root, config, db_engine)

    @property
    def images_dir(self) -> Path:
        return (self.root / self.config.images_dir).resolve()

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self._sessions() as s, s.begin():
            yield s

    def new_session(self) -> Session:
        return self._sessions()

    def image_path(self, image: Image) -> Path:
        p = Path(image.path)
        return p if p.is_absolute() else self.images_dir / p

    def close(self) -> None:
        self.db_engine.dispose()

    # -- images --------------------------------------------------------------------------
    def add_images(self, paths: Iterable[Path], result: AddResult | None = None) -> AddResult:
        """Register image files (skipping content duplicates; unreadable ones are listed in
        the result with the reason). The split is fixed by the content hash, so re-adding
        or moving files never moves an image between splits."""
        result = result or AddResult()
        resolved = []
        for p in paths:
            try:
                resolved.append(Path(p).resolve(strict=True))
            except (OSError, RuntimeError) as exc:
                result.skip(str(p), f"cannot resolve: {exc}")
        with self.session() as s:
            known = set(s.scalars(select(Image.sha256)))
            has_val = s.scalar(select(Image.id).where(Image.split == "val").limit(1)) is not None
            added: list[tuple[float, Image]] = []
            for path in sorted(resolved):
                try:
                    with PILImage.open(path) as im:
                        width, height = im.size
                        im.verify()
                    sha = file_sha256(path)
                except Exception as exc:  # PIL raises many types for a bad file
                    result.skip(str(path), f"not a readable image: {exc}")
                    continue
                if sha in known:
                    result.duplicates += 1
                    continue
                known.add(sha)
                try:
                    rel = str(path.relative_to(self.images_dir))
                except ValueError:
                    rel = str(path)
                score = int(sha[:8], 16) / 0xFFFFFFFF
                val = score < self.config.val_fraction
                has_val |= val
                image = Image(path=rel, sha256=sha, width=width, height=height,
                              split="val" if val else "train")
                s.add(image)
                added.append((score, image))
                result.added += 1
            if (not has_val and added and self.config.val_fraction > 0
                    and len(known) >= 2):
                # Rounds are validated on the val split: once the project has two images,
                # one of the new ones (the lowest hash: stable) goes there, whatever the draw.
                min(added, key=lambda a: a[0])[1].split = "val"
        return result

    def add_image_dir(self, folder: str | os.PathLike,
                      result: AddResult | None = None) -> AddResult:
        folder = Path(folder)
        if not folder.is_dir():
            raise ProjectError(f"image folder {folder} does not exist")
        result = result or AddResult()
        return self.add_images(scan_images(folder, result), result)

    # -- users ---------------------------------------------------------------------------
    def add_user(self, name: str, role: Role | str = Role.annotator) -> str:
        """Create a user; returns the API token (only its hash is stored)."""
        role = Role(role)
        token = secrets.token_urlsafe(24)
        with self.session() as s:
            if s.scalar(select(User).where(User.name == name)) is not None:
                raise ProjectError(f"user {name!r} exists already")
            s.add(User(name=name, role=role.value, token_hash=hash_token(token)))
        return token


def init_project(
    root: str | os.PathLike, images_dir: str | os.PathLike, *, db_url: str = "",
    val_fraction: float = 0.1, admin: str = "admin", result: AddResult | None = None,
    classes: list[str] | None = None,
) -> tuple[Project, str]:
    """Create a project folder and database, register the images of `images_dir`, an
    admin user, and the mask classes `classes` (none: class-agnostic). Returns the open
    project and the admin's token; `result`, when given, receives what was added and the
    unreadable entries of the folder (skipped).

    All or nothing: when any step fails, what this call created (the folder or the files
    in it, a SQLite database file) is removed, so the same command can be run again."""
    root = Path(root).resolve()
    if (root / PROJECT_FILE).exists():
        raise ProjectError(f"{root} is already a maskengine project")
    images = Path(images_dir).resolve()
    if not images.is_dir():
        raise ProjectError(f"image folder {images} does not exist")
    made_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.iterdir())
    sqlite_file = _sqlite_file(db_url)
    made_db = sqlite_file is not None and not sqlite_file.exists()
    try:
        rel = os.path.relpath(images, root)
    except ValueError:  # another drive on Windows
        rel = str(images)
    config = ProjectConfig(images_dir=rel, db_url=db_url, val_fraction=val_fraction)
    project = None
    try:
        write_atomic(root / PROJECT_FILE,
                      json.dumps(dataclasses.asdict(config), indent=1) + "\n")
        project = Project.open(root)
        project.add_image_dir(images, result)
        token = project.add_user(admin, Role.admin)
        if classes:
            from .categories import add_categories

            with project.session() as s:
                add_categories(s, classes)
        write_atomic(root / "admin_token", token + "\n", mode=0o600)
    except BaseException:
        if project is not None:
            project.close()
        _remove_new(root, before, made_root)
        if made_db and sqlite_file is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{sqlite_file}{suffix}").unlink(missing_ok=True)
        raise
    return project, token


def _sqlite_file(db_url: str) -> Path | None:
    """The file of a `sqlite:///path` URL (None for the default store.db or other
    databases)."""
    prefix = "sqlite:///"
    if db_url.startswith(prefix) and len(db_url) > len(prefix):
        return Path(db_url[len(prefix):]).resolve()
    return None


def _remove_new(root: Path, before: set[Path], made_root: bool) -> None:
    if made_root:
        shutil.rmtree(root, ignore_errors=True)
        return
    for p in set(root.iterdir()) - before:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
