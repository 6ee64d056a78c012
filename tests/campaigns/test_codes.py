import pytest

from campaigns import codes as code_gen
from campaigns.models import Campaign, Code, CodeGenerationJob
from campaigns.services import code_generation_start
from common.errors import ApplicationError
from tests.factories import CampaignFactory, CodeFactory


def test_random_codes_follow_the_pattern_with_an_unambiguous_alphabet():
    made = code_gen.random_codes("spr-####-????-**", 2000)
    assert len(made) == 2000
    for code in made:
        assert code[:4] == "SPR-" and code[8] == "-" and code[13] == "-"
        assert set(code[4:8]) <= set(code_gen.DIGITS) and set(code[9:13]) <= set(code_gen.LETTERS)
        assert set(code[14:]) <= set(code_gen.ALPHANUM)
        assert not set(code) & set("01OIL")


@pytest.mark.parametrize(("pattern", "count"), [("", 1), ("AB-##", 1), ("####", 1000), ("X" * 51, 1)])
def test_bad_patterns_are_refused(pattern, count):
    with pytest.raises(code_gen.PatternError):
        code_gen.check_pattern(pattern, count)


@pytest.mark.django_db
def test_generation_tops_up_collisions_and_never_duplicates(tenant):
    campaign = CampaignFactory(tenant=tenant)
    taken = sorted(code_gen.random_codes("#####", 10_000))  # a third of the 32,768 possible codes
    code_gen.insert_codes(tenant_id=tenant.pk, campaign_id=campaign.pk, codes=taken, usage_limit=1)
    made = code_gen.generate_codes(tenant_id=tenant.pk, campaign_id=campaign.pk, pattern="#####", count=1500, batch=500)
    assert made == 1500
    assert Code.objects.filter(campaign=campaign).count() == 11_500
    assert Campaign.objects.get(pk=campaign.pk).codes_count == 1500


@pytest.mark.django_db
def test_codes_are_unique_per_tenant_not_globally(tenant, other_tenant):
    code = CodeFactory(campaign__tenant=tenant, code="SAME-CODE")
    other = CampaignFactory(tenant=other_tenant)
    assert (
        code_gen.insert_codes(tenant_id=tenant.pk, campaign_id=code.campaign_id, codes=["SAME-CODE"], usage_limit=1)
        == 0
    )
    assert (
        code_gen.insert_codes(tenant_id=other_tenant.pk, campaign_id=other.pk, codes=["SAME-CODE"], usage_limit=1) == 1
    )


@pytest.mark.django_db
def test_bulk_generation_runs_as_a_task_after_commit(tenant, django_capture_on_commit_callbacks):
    campaign = CampaignFactory(tenant=tenant, code_pattern="BLK-####-????", code_usage_limit=2)
    with django_capture_on_commit_callbacks(execute=True):
        job = code_generation_start(campaign=campaign, count=3000)
    job.refresh_from_db()
    assert (job.status, job.created) == ("done", 3000)
    assert Code.objects.filter(campaign=campaign, usage_limit=2, code__startswith="BLK-").count() == 3000
    with pytest.raises(ApplicationError):
        code_generation_start(campaign=campaign, count=10, pattern="A#")
    assert CodeGenerationJob.objects.count() == 1


@pytest.mark.django_db
def test_generate_codes_command(tenant):
    from django.core.management import call_command

    campaign = CampaignFactory(tenant=tenant)
    call_command("generate_codes", tenant.slug, str(campaign.pk), "250", "--pattern", "CMD-####-????")
    assert Code.objects.filter(campaign=campaign, code__startswith="CMD-").count() == 250
