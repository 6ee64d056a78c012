"""What this app holds of an erased member beyond sums (`members.erasure`): evaluation traces name the member's
external id (a column and the document's input). Rewritten when it became a pseudonym, so that the Explain page
never shows the next member who takes the id as this one's. Found through the (member, created_at) index."""

from members.erasure import Erased, register
from rewards.models import EvaluationTrace


def member_copies_erase(erased: Erased) -> None:
    if not erased.external_id_changed:
        return
    traces = EvaluationTrace.objects.filter(member_id=erased.member_id)
    changed = []
    for trace in traces.only("id", "member_external_id", "document").iterator(chunk_size=1000):
        trace.member_external_id = erased.external_id
        trace.document = {**trace.document, "input": {**trace.document.get("input", {}), "member": erased.external_id}}
        changed.append(trace)
    EvaluationTrace.objects.bulk_update(changed, ["member_external_id", "document"], batch_size=1000)


register(member_copies_erase)
