"""The behaviour profile dk2020flow ships for the DK2020 workflow.

It is YAML, kept in a Python module so that every install carries it. Print it
with ``dk2020flow simulate --print-behaviour`` and start your own from it.

The shape follows what happened in public (DOMAIN.md): most councils decided
in August 2020, some late; the pilot municipalities carried on from 2019; the
wave-1 group joined round 1 and wave 2 round 2 (some of them declined first
and reconsidered when round 2 opened); København declined and Glostrup joined
late; plans went through one to three CAPF revision rounds; C40's approval and
the council's adoption came in either order; a few municipalities withdrew.
"""

from __future__ import annotations

DK2020_BEHAVIOUR = """\
profile: dk2020-default
workflow: dk2020
description: >
  A realistic DK2020 programme, 2020-2023: councils decide in August 2020,
  round 1 starts in November 2020 and round 2 in November 2021, plans pass
  CAPF screening after one to three revisions.

# Contacts created for every municipality that has none in the role.
contacts:
  mayor:            {name: "Borgmesteren i {municipality}", email: "borgmester@{slug}.example.dk"}
  contact_person:   {name: "Klimakoordinator, {municipality} Kommune", email: "klima@{slug}.example.dk"}
  regional_advisor: {name: "DK2020-rådgiver, {region}", email: "dk2020-{region_slug}@kkr.example.dk"}

# How each municipality's case is opened (first matching rule wins).
open:
  - groups: [pilot]
    state: {guidance: 0.35, drafting: 0.65}
    cohort: pilot
    role: follow_up
    actor: "KL (opfølgning)"
    reason: "Pilotkommune siden 2019; fortsætter i partnerskabet"
    data:
      contact_person_name: "Klimakoordinator, {municipality} Kommune"
      contact_person_email: "klima@{slug}.example.dk"
  - {role: follow_up, actor: "KL (opfølgning)"}    # everyone else: invited

states:
  invited:
    choose:
      # Wave 1: most councils decide in August 2020, some after the deadline.
      - trigger: decide_participate
        role: council
        groups: [wave1]
        probability: 0.12
        at: {between: [2020-09-01, 2020-10-02]}
        data: &join1
          cohort: round1
          decision_date: "{date}"
          contact_person_name: "Klimakoordinator, {municipality} Kommune"
          contact_person_email: "klima@{slug}.example.dk"
      - trigger: decide_participate
        role: council
        groups: [wave1]
        at: {between: [2020-08-10, 2020-08-31], distribution: triangular, mode: 2020-08-27}
        data: *join1
      # Wave 2: a quarter decline first (and reconsider in 2021), the rest choose round 2.
      - trigger: decide_decline
        role: council
        groups: [wave2]
        probability: 0.25
        at: {between: [2020-08-10, 2020-09-10], distribution: triangular, mode: 2020-08-27}
        data: {decision_date: "{date}", decline_reason: "Kommunalbestyrelsen ønsker at vente"}
      - trigger: decide_participate
        role: council
        groups: [wave2]
        at: {between: [2020-08-10, 2020-09-15], distribution: triangular, mode: 2020-08-27}
        data: &join2
          cohort: round2
          decision_date: "{date}"
          contact_person_name: "Klimakoordinator, {municipality} Kommune"
          contact_person_email: "klima@{slug}.example.dk"
      # Unknown: decline (København has a C40 plan of its own).
      - trigger: decide_decline
        role: council
        groups: [unknown]
        at: {between: [2020-08-17, 2020-09-04]}
        data: {decision_date: "{date}", decline_reason: "Kommunen har allerede en klimaplan"}

  declined:
    choose:
      - trigger: reconsider
        role: council
        groups: [wave2]
        at: {between: [2021-05-10, 2021-06-30], distribution: triangular, mode: 2021-06-01}
        data: *join2
      - trigger: reconsider
        role: council
        municipalities: [Glostrup]
        at: {between: [2021-06-14, 2021-08-06]}
        data: *join2

  decided:
    choose:
      - trigger: submit_application
        role: contact_person
        visits: first
        probability: 0.05
        after: {from: cohort.application_deadline, distribution: uniform, min: 1, max: 8}
        data: &application {commitment_signed: true, staff_hours_per_week: {choice: [15, 20, 25, 30, 37]}}
      - trigger: submit_application
        role: contact_person
        visits: first
        after: {from: cohort.application_deadline, distribution: uniform, min: -45, max: -1}
        data: *application
      - trigger: submit_application
        role: contact_person
        visits: later
        after: {distribution: lognormal, median: 8, sigma: 0.4}
        data: *application

  application_submitted:
    choose:
      - trigger: request_application_changes
        role: secretariat
        actor: CONCITO
        visits: first
        probability: 0.08
        after: {distribution: lognormal, median: 6, sigma: 0.4}
        comment: "Forpligtelseserklæringen mangler borgmesterens underskrift"
      - trigger: accept_application
        role: secretariat
        actor: CONCITO
        after: {distribution: lognormal, median: 9, sigma: 0.35}

  onboarding:
    choose:
      - trigger: complete_onboarding
        role: regional_advisor
        actor: "DK2020-rådgiver, {region}"
        after: {distribution: lognormal, median: 32, sigma: 0.3}
        data: {advisor_name: "DK2020-rådgiver, {region}"}

  guidance:
    choose:
      - trigger: withdraw
        role: council
        cohorts: [round1, round2]
        probability: 0.015
        after: {distribution: uniform, min: 60, max: 300}
        data: {withdraw_reason: "Kommunen kan ikke afsætte ressourcer til planarbejdet"}
      - trigger: complete_evidence
        role: contact_person
        cohorts: [round1, round2]
        after: {from: cohort.start, distribution: lognormal, median: 300, sigma: 0.15}
        data: &evidence {inventory_base_year: {choice: [2018, 2019, 2019, 2020]}}
      - trigger: complete_evidence
        role: contact_person
        cohorts: [pilot]
        after: {from: cohort.start, distribution: lognormal, median: 330, sigma: 0.1}
        data: *evidence

  drafting:
    choose:
      - trigger: withdraw
        role: council
        cohorts: [round1, round2]
        probability: 0.01
        after: {distribution: uniform, min: 30, max: 200}
        data: {withdraw_reason: "Planarbejdet er sat i bero efter kommunalvalget"}
      - trigger: submit_plan
        role: contact_person
        cohorts: [round1, round2]
        after: {distribution: lognormal, median: 190, sigma: 0.35}
        data: &plan {plan_url: "https://www.{slug}.example.dk/klimaplan/udkast-{visit}.pdf"}
      - trigger: submit_plan
        role: contact_person
        cohorts: [pilot]
        after: {distribution: lognormal, median: 130, sigma: 0.4}
        data: *plan

  screening:
    choose:
      - trigger: pass_screening
        role: secretariat
        actor: CONCITO
        after: {distribution: lognormal, median: 16, sigma: 0.35}
        screening:
          checklist: capf
          otherwise: request_revision
          revisions: {distribution: geometric, p: 0.45, min: 1, max: 3}
          short_items: [1, 5]
          not_met_share: 0.25
          # Which requirements most often hold plans back.
          difficulty: {P3.5: 4, P2.5: 3.5, P3.4: 3, P2.4: 2.5, P1.3: 2, P3.6: 1.5, P3.1: 1.5,
                       P1.2: 0.5, P2.1: 0.3, P1.1: 0.5}
          not_applicable: {P1.2: 0.03}

  revising:
    choose:
      - trigger: resubmit_plan
        role: contact_person
        after: {distribution: lognormal, median: 35, sigma: 0.45}
        data: {plan_url: "https://www.{slug}.example.dk/klimaplan/revideret-{visit}.pdf"}

  approval:
    each:
      - trigger: record_c40_approval
        role: approver
        actor: C40 Cities
        after: {distribution: lognormal, median: 35, sigma: 0.5}
        data: {c40_approval_date: "{date}"}
      - trigger: record_council_adoption
        role: council
        after: {distribution: lognormal, median: 45, sigma: 0.5}
        data: {adoption_date: "{date}"}
"""
