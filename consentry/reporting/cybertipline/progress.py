"""How far one report has got at NCMEC, as a small value the caller persists after every
step (``CyberTipline.send`` hands each new value to ``on_progress``). Handing the last
persisted value back to ``send`` resumes the report where it stopped, so a crash between
steps never opens a second report nor uploads a file twice.

Two flags close the windows where a call may have reached NCMEC without its answer being
recorded: ``submitting`` (a /submit whose report id was lost: NCMEC deletes such an
unfinished report by itself, so it can never become a tip) and ``uploading`` (an /upload
whose file id was lost: the report might now hold the file once without our knowing its id,
so the report is retracted and the submission starts over; see ``CyberTipline.send``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from consentry.errors import InvalidRequest


@dataclass(frozen=True)
class SubmissionProgress:
    report_key: str
    report_id: str | None = None
    submitting: bool = False
    uploading: str | None = None  # the key of a file whose /upload answer is not recorded
    uploaded: tuple[tuple[str, str], ...] = ()  # (file key, NCMEC file id), in upload order
    described: tuple[str, ...] = ()  # file keys whose /fileinfo NCMEC accepted
    finished: bool = False
    retracted: bool = False
    abandoned_report_ids: tuple[str, ...] = ()  # unfinished reports retracted or expired

    @property
    def done(self) -> bool:
        return self.finished or self.retracted

    def file_id(self, file_key: str) -> str | None:
        return next((fid for key, fid in self.uploaded if key == file_key), None)

    def with_upload(self, file_key: str, file_id: str) -> SubmissionProgress:
        return replace(self, uploading=None, uploaded=(*self.uploaded, (file_key, file_id)))

    def with_described(self, file_key: str) -> SubmissionProgress:
        return replace(self, described=(*self.described, file_key))

    def restarted(self) -> SubmissionProgress:
        """Progress after giving up the current report id: nothing sent, the id remembered."""
        abandoned = self.abandoned_report_ids
        if self.report_id is not None:
            abandoned = (*abandoned, self.report_id)
        return SubmissionProgress(self.report_key, abandoned_report_ids=abandoned)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict for the caller's store (ids and keys only: nothing sensitive)."""
        return {"report_key": self.report_key, "report_id": self.report_id,
                "submitting": self.submitting, "uploading": self.uploading,
                "uploaded": [{"file_key": k, "file_id": f} for k, f in self.uploaded],
                "described": list(self.described), "finished": self.finished,
                "retracted": self.retracted,
                "abandoned_report_ids": list(self.abandoned_report_ids)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubmissionProgress:
        try:
            return cls(
                report_key=str(data["report_key"]),
                report_id=None if data.get("report_id") is None else str(data["report_id"]),
                submitting=bool(data.get("submitting", False)),
                uploading=data.get("uploading"),
                uploaded=tuple((str(u["file_key"]), str(u["file_id"]))
                               for u in data.get("uploaded", [])),
                described=tuple(str(k) for k in data.get("described", [])),
                finished=bool(data.get("finished", False)),
                retracted=bool(data.get("retracted", False)),
                abandoned_report_ids=tuple(str(r) for r in data.get("abandoned_report_ids", [])))
        except (KeyError, TypeError) as exc:
            raise InvalidRequest("invalid_progress", f"recorded CyberTipline progress is "
                                 f"malformed: {exc!r}", field="progress") from None
