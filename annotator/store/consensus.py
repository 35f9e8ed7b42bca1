"""Consensus: the shared labels of overlap images decided from the annotators' votes, written
as one history group (one undo reverses the whole run; the votes stay in their layers).

Whole-image labels take the majority: a classification image gets the class most voters gave
(a tie is left for a person: the image is flagged, "needs review (flagged)"), a multilabel image
every class more than half the voters gave (exactly half is a tie). Boxes are fused with
ensemble-boxes' weighted boxes fusion (IoU >= 0.5 clusters, coordinates weighted by score) and
a fused box is kept when more than half the voters drew it (exactly half: a tie, flagged). An
image with no label left after a clear vote is marked labeled as a negative. Only images whose
shared layer is still unlabeled are written. ensemble-boxes is imported inside the function
that fuses."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from annotator.errors import MissingDependencyError
from annotator.store.history import Group, image_state, snapshot
from annotator.store.labels import load_image, refresh_status
from annotator.store.models import Annotation, Dataset, Image
from annotator.store.overlap import Votes, votes

IOU = 0.5
XYWH = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the votes of one image decide: whole-image class names, boxes (class, xywh), and
    why a person must look (a tie), if so."""

    labels: tuple[str, ...] = ()
    boxes: tuple[tuple[str, XYWH], ...] = ()
    tie: str | None = None


@dataclass
class ConsensusReport:
    images: int = 0  # overlap images with enough votes
    written: int = 0  # images whose shared layer was written
    labels: int = 0  # labels and boxes written
    ties: list[str] = field(default_factory=list)  # "path: reason" of images left for review
    skipped: int = 0  # images already labelled in the shared layer

    def summary(self) -> str:
        return (f"{self.images} overlap images with enough votes: consensus written on "
                f"{self.written} ({self.labels} labels), {len(self.ties)} ties flagged for "
                f"review, {self.skipped} already labelled")  # fmt: skip


def majority(given: dict[str, list[str]], multilabel: bool) -> Decision:
    """The whole-image labels a majority of voters gave (`given`: voter -> class names)."""
    voters = len(given)
    if not multilabel:
        tally = Counter(names[0] for names in given.values() if names)
        ranked = tally.most_common()
        if not ranked:
            return Decision(tie="no voter gave a label")
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            return Decision(tie=f"votes tie: {_tally(ranked)}")
        return Decision(labels=(ranked[0][0],))
    tally = Counter(name for names in given.values() for name in set(names))
    tied = sorted(n for n, c in tally.items() if 2 * c == voters)
    if tied:
        return Decision(tie=f"half the votes for {', '.join(tied)} ({voters} voters)")
    return Decision(labels=tuple(sorted(n for n, c in tally.items() if 2 * c > voters)))


def _tally(ranked: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} {count}" for name, count in ranked)


def fuse(v: Votes, classes: list[str]) -> Decision:
    """Weighted boxes fusion of every voter's boxes (a voter with no box counts too)."""
    try:
        from ensemble_boxes import weighted_boxes_fusion
    except ImportError:
        raise MissingDependencyError(
            "fusing boxes needs ensemble-boxes: pip install 'annotator[team]'"
        ) from None
    w, h = float(v.width), float(v.height)
    boxes, scores, labels = [], [], []
    for drawn in v.boxes.values():
        boxes.append([[x / w, y / h, min((x + bw) / w, 1.0), min((y + bh) / h, 1.0)]
                      for _, (x, y, bw, bh) in drawn])  # fmt: skip
        scores.append([1.0] * len(drawn))
        labels.append([classes.index(name) for name, _ in drawn])
    fused, conf, cls = weighted_boxes_fusion(boxes, scores, labels, iou_thr=IOU, skip_box_thr=0.0)
    kept, tied = [], []
    for (x1, y1, x2, y2), score, c in zip(fused, conf, cls, strict=True):
        name = classes[int(c)]
        if abs(score - 0.5) < 1e-9:
            tied.append(name)
        elif score > 0.5 and x2 > x1 and y2 > y1:
            kept.append((name, (float(x1 * w), float(y1 * h), float((x2 - x1) * w),
                                float((y2 - y1) * h))))  # fmt: skip
    tie = f"half the voters drew a {', '.join(sorted(set(tied)))} box" if tied else None
    return Decision(boxes=tuple(kept), tie=tie)


def decide(v: Votes, task: str, classes: list[str]) -> Decision:
    if task == "detection":
        return fuse(v, classes)
    return majority(v.labels, multilabel=task == "multilabel")


def consensus(session: Session, ds: Dataset, author: str, min_votes: int = 2) -> ConsensusReport:
    """Write the consensus of every overlap image at least `min_votes` people finished (and
    whose shared layer is unlabeled) into the shared layer, as one history group. Commits."""
    classes = [c.name for c in sorted(ds.classes, key=lambda c: c.position)]
    ids = {c.name: c.id for c in ds.classes}
    report, group = ConsensusReport(), Group(author)
    for v in votes(session, ds, min_votes):
        report.images += 1
        image = load_image(session, v.image_id)
        if image.status != "unlabeled":
            report.skipped += 1
            continue
        decision = decide(v, ds.task, classes)
        if decision.tie and not decision.boxes:
            image.flag = f"overlap: {decision.tie}"
            report.ties.append(f"{image.path}: {decision.tie}")
            continue
        report.labels += _write(session, ds, image, decision, ids, group, len(v.labels))
        report.written += 1
        if decision.tie:
            image.flag = f"overlap: {decision.tie}"
            report.ties.append(f"{image.path}: {decision.tie}")
    group.flush(session)
    session.commit()
    return report


def _write(session: Session, ds: Dataset, image: Image, decision: Decision, ids: dict[str, int],
           group: Group, voters: int) -> int:  # fmt: skip
    """The decided labels as new shared labels of the image, its status labeled."""
    note = f"consensus of {voters} votes"
    made = [(name, None) for name in decision.labels] + list(decision.boxes)
    for name, box in made:
        ann = Annotation(
            dataset_id=ds.id, task=ds.task, image_id=image.id, class_id=ids[name],
            kind="box" if box else "label", source="human", review="accepted",
            author=group.author, note=note, revision=1,
        )  # fmt: skip
        if box:
            ann.x, ann.y, ann.w, ann.h = box
        session.add(ann)
        session.flush()
        group.add(ds.id, "create", image_id=image.id, annotation_id=ann.id,
                  after=snapshot(ann))  # fmt: skip
    refresh_status(session, image, group)
    if not made and image.status == "unlabeled":  # a clear vote for nothing: a negative
        before = image_state(image)
        image.status = "labeled"
        group.add(ds.id, "status", image_id=image.id, before=before, after=image_state(image))
    image.revision += 1
    return len(made)
