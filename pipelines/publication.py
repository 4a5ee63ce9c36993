"""What readers see: the warehouse and the reports of one refresh, switched in together by one atomic rename.

Beside the warehouse file W (say data/warehouse/outcomes.duckdb):

    W.generations/<id>/outcomes.duckdb   one refresh's warehouse ...
    W.generations/<id>/reports/          ... and its reports, written before anyone can see them
    W.current -> W.generations/<id>      the one link a publication replaces (rename(2) is atomic)
    W -> W.current/outcomes.duckdb       the path analysts open; never changes once made
    R -> .../W.current/reports           the reports folder directors open; never changes once made

So a reader who resolves W and R sees both of the old generation or both of
the new one at every instant, through a kill -9 or a full disk at any point
of a publication: until the link is replaced nothing they reach has changed,
and after it everything has. A reader that holds the old file open keeps
reading it (the previous generation is kept until the next publication).
A killed publication leaves a `<id>.partial` folder or a temporary link behind;
the next publication removes them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path
from uuid import uuid4

WAREHOUSE_FILE = "outcomes.duckdb"
REPORTS_FOLDER = "reports"
PARTIAL = ".partial"


class Publication:
    """The generations of one warehouse path and the reports folder published with it."""

    def __init__(self, warehouse: Path, reports: Path):
        self.warehouse, self.reports = Path(warehouse), Path(reports)
        self.generations = self.warehouse.with_name(self.warehouse.name + ".generations")
        self.current = self.warehouse.with_name(self.warehouse.name + ".current")

    def current_generation(self) -> Path | None:
        """Return the generation folder readers see now, or None before the first publication of this layout."""
        if not self.current.is_symlink():
            return None
        return self.generations / Path(os.readlink(self.current)).name

    def publish(self, working_warehouse: Path, working_reports: Path) -> Path:
        """Publish a run's warehouse file (moved) and reports folder (copied) as the current generation.

        Returns the new generation's folder. Raises OSError (a full disk, say)
        before the switch with nothing readers see changed; the partial
        generation is removed.
        """
        self.clean_leftovers()
        self.adopt_unlinked_layout()
        name = uuid4().hex
        partial = self.generations / (name + PARTIAL)
        try:
            partial.mkdir(parents=True)
            copy_tree_keeping_links(working_reports, partial / REPORTS_FOLDER)
            sync_tree(partial / REPORTS_FOLDER)
            # Moved last: the working copy stays where it was if anything before this failed.
            os.replace(working_warehouse, partial / WAREHOUSE_FILE)
            generation = partial.with_name(name)
            os.replace(partial, generation)
            sync_folder(self.generations)
        except OSError:
            if (partial / WAREHOUSE_FILE).exists() and not working_warehouse.exists():
                os.replace(partial / WAREHOUSE_FILE, working_warehouse)
            shutil.rmtree(partial, ignore_errors=True)
            raise
        previous = self.current_generation()
        self.point(self.current, Path(self.generations.name) / name)  # the switch
        self.link_readers()
        self.remove_generations(keep={name, previous.name if previous else name})
        return generation

    def link_readers(self) -> None:
        """Make W and R the links through the current generation (once; later publications leave them)."""
        self.point(self.warehouse, Path(self.current.name) / WAREHOUSE_FILE)
        if self.reports.is_dir() and not self.reports.is_symlink():
            # A folder (an older version's reports) cannot be replaced by a link in one rename: it is
            # absent for the moment between two renames, once.
            retired = self.reports.with_name(self.reports.name + ".retired")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(self.reports, retired)
            shutil.rmtree(retired, ignore_errors=True)
        self.point(self.reports, Path(os.path.relpath(self.current / REPORTS_FOLDER, self.reports.parent)))

    def adopt_unlinked_layout(self) -> None:
        """Turn a warehouse file published by an older version into a first generation, readable throughout.

        The file is hard-linked into the generation, so W never goes missing.
        Its reports folder is copied there; link_readers then puts the link in
        its place.
        """
        if self.current.is_symlink() or not self.warehouse.is_file() or self.warehouse.is_symlink():
            return
        name = uuid4().hex
        partial = self.generations / (name + PARTIAL)
        partial.mkdir(parents=True)
        os.link(self.warehouse, partial / WAREHOUSE_FILE)
        if self.reports.is_dir() and not self.reports.is_symlink():
            copy_tree_keeping_links(self.reports, partial / REPORTS_FOLDER)
        else:
            (partial / REPORTS_FOLDER).mkdir()
        os.replace(partial, self.generations / name)
        self.point(self.current, Path(self.generations.name) / name)
        self.link_readers()

    @staticmethod
    def point(link: Path, target: Path) -> None:
        """Make link a symbolic link to target in one rename (a temporary link is made first)."""
        if link.is_symlink() and Path(os.readlink(link)) == target:
            return
        link.parent.mkdir(parents=True, exist_ok=True)
        temporary = link.with_name(f".{link.name}.link-{uuid4().hex}")
        os.symlink(target, temporary)
        os.replace(temporary, link)
        sync_folder(link.parent)

    def clean_leftovers(self) -> None:
        """Remove what a killed publication left: partial generations and temporary links (older versions' too)."""
        if self.generations.is_dir():
            for folder in self.generations.glob("*" + PARTIAL):
                shutil.rmtree(folder, ignore_errors=True)
        for link in (self.current, self.warehouse, self.reports):
            for temporary in link.parent.glob(f".{link.name}.link-*"):
                temporary.unlink(missing_ok=True)
        # Folders an older version's publication left when it was killed between its copies and renames.
        for pattern in (".publishing-*", ".retired-*", ".retired"):
            for folder in self.reports.parent.glob(self.reports.name + pattern):
                shutil.rmtree(folder, ignore_errors=True)

    def remove_generations(self, keep: set[str]) -> None:
        """Remove every generation but those named: the current one and the one readers may still hold open."""
        for folder in self.generations.iterdir():
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (new names, renames) to disk."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_tree(folder: Path) -> None:
    """Flush every file of a folder and the folders themselves to disk."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    for path in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        sync_folder(path)


def copy_tree_keeping_links(source: Path, target: Path) -> None:
    """Copy a folder as shutil.copytree does, but files hard-linked to each other in source are one file linked
    alike in target (never linked to source's: a later write there leaves the copy as it was).

    Every reader's folder holds its own plotly.js, a hard link to one copy (pipelines.reports.dashboard):
    copied file by file, twenty clinics' reports took 112 MB per generation to write and flush, 20 MB kept.
    """
    first_copies: dict[tuple[int, int], str] = {}

    def copy(source_file: str, target_file: str) -> str:
        status = os.stat(source_file)
        if status.st_nlink > 1:
            first_copy = first_copies.setdefault((status.st_dev, status.st_ino), target_file)
            if first_copy != target_file:
                try:
                    os.link(first_copy, target_file)
                    return target_file
                except OSError:  # a file system without hard links: copied
                    pass
        return shutil.copy2(source_file, target_file)

    shutil.copytree(source, target, copy_function=copy)


# Linux's FICLONE ioctl (linux/fs.h): the standard library has no call that clones a file's blocks.
FICLONE = 0x40049409


def clone_file(source: Path, target: Path) -> None:
    """Make target a copy of source: a clone that shares its blocks where the file system can (XFS, Btrfs), else
    a copy of every byte.

    An incremental refresh starts from a copy of the published warehouse (1.25 GB at a million patients): a
    clone takes no time and no space whatever the size, and only the blocks the refresh writes become its own.
    """
    if sys.platform.startswith("linux"):
        try:
            with open(source, "rb") as source_handle, open(target, "wb") as target_handle:
                fcntl.ioctl(target_handle.fileno(), FICLONE, source_handle.fileno())
            return
        except OSError:  # ext4, tmpfs, two file systems: copied below (a real failure fails there too)
            pass
    shutil.copyfile(source, target)
