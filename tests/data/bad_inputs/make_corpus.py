"""Write the bad-input corpus: one feed file per case, and cases.yaml with what each must say.

Every case is ingested into a store that already holds ``tests/data/valid`` (snapshot 1), so
foreign keys and store duplicates have something to point at. Run from this folder:
``python make_corpus.py``. The files it writes are the corpus; this script documents them.
"""

from pathlib import Path

import yaml

HERE = Path(__file__).parent
HEADERS = {
    "studies": "study_id,title,design,registration_id,indication,start_year,n_planned",
    "subjects": "study_id,subject_id,site_id,age,sex,phototype,indication,end_day,end_reason",
    "units": "study_id,unit_id,subject_id,body_site,side,modality,randomised",
    "sessions": "study_id,unit_id,session_number,day,modality,device,needle_depth_mm,passes,"
    "numbing_agent,prp_volume_ml,rf_energy_mj,laser_type,laser_fluence_j_cm2",
    "assessments": "study_id,unit_id,instrument,visit,day,value,rater_role,rater_id",
    "adverse_events": "study_id,subject_id,ae_seq,unit_id,term,onset_day,duration_days,"
    "severity,serious,relatedness",
}
GOOD = {
    "studies": "T7,Good trial,parallel,,wrinkles,2022,20",
    "subjects": "T1,S9,A,40,female,II,acne_scars,168,completed",
    "units": "T1,S1-X,S1,neck,whole,MN,false",
    "sessions": "T1,S1-L,3,56,MN+PRP,pen,1.5,4,lidocaine,3,,,",
    "assessments": "T1,S1-R,gb_quant,week_24,168,20,investigator,I1",
    "adverse_events": "T1,S1,2,S1-R,dryness,3,4,mild,false,possible",
}

# (case, table, bad row, column, rule, message fragment); each file = one good row + the bad row
ROW_CASES = [
    (
        "design_code",
        "studies",
        "T2,Trial two,crossover,,,2020,10",
        "design",
        "code_design",
        "one of the codelist design",
    ),
    (
        "study_id_pattern",
        "studies",
        "T 3,Trial,parallel,,,2020,10",
        "study_id",
        "pattern",
        "must match",
    ),
    (
        "start_year_type",
        "studies",
        "T4,Trial,parallel,,,twenty,10",
        "start_year",
        "type_integer",
        "whole number",
    ),
    (
        "start_year_range",
        "studies",
        "T5,Trial,parallel,,,1850,10",
        "start_year",
        "range",
        "between 1990 and 2100",
    ),
    (
        "title_required",
        "studies",
        "T6,,parallel,,,2020,10",
        "title",
        "required",
        "required but missing",
    ),
    (
        "study_indication_code",
        "studies",
        "T8,Trial,parallel,,acne,2020,10",
        "indication",
        "code_indication",
        "codelist indication",
    ),
    (
        "n_planned_range",
        "studies",
        "T9,Trial,parallel,,,2020,0",
        "n_planned",
        "range",
        "between 1 and",
    ),
    ("sex_code", "subjects", "T1,S3,A,30,f,III,acne_scars,,", "sex", "code_sex", "codelist sex"),
    (
        "phototype_code",
        "subjects",
        "T1,S4,A,30,female,VII,acne_scars,,",
        "phototype",
        "code_phototype",
        "codelist phototype",
    ),
    (
        "age_range",
        "subjects",
        "T1,S5,A,9,female,III,acne_scars,,",
        "age",
        "range",
        "between 12 and 100",
    ),
    (
        "age_type",
        "subjects",
        "T1,S6,A,thirty,female,III,acne_scars,,",
        "age",
        "type_integer",
        "whole number",
    ),
    (
        "end_reason_code",
        "subjects",
        "T1,S7,A,30,female,III,acne_scars,90,moved",
        "end_reason",
        "code_end_reason",
        "codelist end_reason",
    ),
    (
        "end_day_range",
        "subjects",
        "T1,S8,A,30,female,III,acne_scars,-1,other",
        "end_day",
        "range",
        "between 0 and",
    ),
    (
        "subject_indication_code",
        "subjects",
        "T1,S10,A,30,female,III,scars,,",
        "indication",
        "code_indication",
        "codelist indication",
    ),
    (
        "subject_id_pattern",
        "subjects",
        "T1,S/11,A,30,female,III,acne_scars,,",
        "subject_id",
        "pattern",
        "must match",
    ),
    (
        "subject_orphan_study",
        "subjects",
        "T99,S1,A,30,female,III,acne_scars,,",
        "study_id",
        "foreign_key_studies",
        "not found in studies",
    ),
    (
        "subject_in_store",
        "subjects",
        "T1,S1,B,32,female,III,acne_scars,168,completed",
        "site_id, age",
        "correction_needs_reason",
        "is stored with other values; give --reason TEXT",
    ),
    (
        "body_site_code",
        "units",
        "T1,S1-N,S1,scalp,whole,MN,false",
        "body_site",
        "code_body_site",
        "codelist body_site",
    ),
    ("side_code", "units", "T1,S1-M,S1,face,middle,MN,false", "side", "code_side", "codelist side"),
    (
        "modality_code",
        "units",
        "T1,S1-P,S1,face,whole,PRP,false",
        "modality",
        "code_modality",
        "codelist modality",
    ),
    (
        "randomised_type",
        "units",
        "T1,S1-Q,S1,face,whole,MN,maybe",
        "randomised",
        "type_boolean",
        "true or false",
    ),
    (
        "unit_orphan_subject",
        "units",
        "T1,S77-L,S77,face,left,MN,true",
        "study_id, subject_id",
        "foreign_key_subjects",
        "not found in subjects",
    ),
    (
        "unit_id_pattern",
        "units",
        "T1,S1 L,S1,face,left,MN,true",
        "unit_id",
        "pattern",
        "must match",
    ),
    (
        "device_code",
        "sessions",
        "T1,S1-R,3,56,MN,laser_pen,1.5,4,none,,,,",
        "device",
        "code_device",
        "codelist device",
    ),
    (
        "numbing_code",
        "sessions",
        "T1,S1-R,4,56,MN,pen,1.5,4,ice,,,,",
        "numbing_agent",
        "code_numbing_agent",
        "codelist numbing_agent",
    ),
    (
        "laser_type_code",
        "sessions",
        "R1,P1-B,2,30,MN+laser,pen,1.0,2,none,,,thulium,10",
        "laser_type",
        "code_laser_type",
        "codelist laser_type",
    ),
    (
        "needle_depth_range",
        "sessions",
        "T1,S1-R,5,56,MN,pen,5.5,4,none,,,,",
        "needle_depth_mm",
        "range",
        "between 0.1 and 4",
    ),
    (
        "passes_type",
        "sessions",
        "T1,S1-R,6,56,MN,pen,1.5,four,none,,,,",
        "passes",
        "type_integer",
        "whole number",
    ),
    (
        "session_number_range",
        "sessions",
        "T1,S1-R,0,56,MN,pen,1.5,4,none,,,,",
        "session_number",
        "range",
        "between 1 and 100",
    ),
    (
        "session_modality_code",
        "sessions",
        "T1,S1-R,7,56,microneedling,pen,1.5,4,none,,,,",
        "modality",
        "code_modality",
        "codelist modality",
    ),
    (
        "prp_without_prp",
        "sessions",
        "T1,S1-R,8,56,MN,pen,1.5,4,none,3,,,",
        "prp_volume_ml, modality",
        "prp_volume_needs_prp",
        "PRP volume is recorded only",
    ),
    (
        "rf_without_rf",
        "sessions",
        "T1,S1-R,9,56,MN,pen,1.5,4,none,,30,,",
        "rf_energy_mj, modality",
        "rf_energy_needs_rf",
        "RF energy is recorded only",
    ),
    (
        "laser_without_laser",
        "sessions",
        "T1,S1-R,10,56,MN,pen,1.5,4,none,,,co2,10",
        "laser_type, modality",
        "laser_needs_laser",
        "Laser settings are recorded only",
    ),
    (
        "laser_fluence_range",
        "sessions",
        "R1,P1-B,3,60,MN+laser,pen,1.0,2,none,,,co2,500",
        "laser_fluence_j_cm2",
        "range",
        "between 0 and 300",
    ),
    (
        "session_after_end",
        "sessions",
        "T1,S2-L,2,120,MN,pen,2.0,3,none,,,,",
        "day",
        "within_follow_up",
        "after the subject's end_day",
    ),
    (
        "session_orphan_unit",
        "sessions",
        "T1,S9-L,1,0,MN,pen,2.0,3,none,,,,",
        "study_id, unit_id",
        "foreign_key_units",
        "not found in units",
    ),
    (
        "session_day_type",
        "sessions",
        "T1,S1-R,11,day 56,MN,pen,1.5,4,none,,,,",
        "day",
        "type_integer",
        "whole number",
    ),
    (
        "session_depth_type",
        "sessions",
        "T1,S1-R,12,56,MN,pen,1.5mm,4,none,,,,",
        "needle_depth_mm",
        "type_number",
        "must be a number",
    ),
    (
        "instrument_code",
        "assessments",
        "T1,S1-R,vss,week_24,168,3,investigator,I1",
        "instrument",
        "code_instrument",
        "one of the instruments",
    ),
    (
        "score_above_range",
        "assessments",
        "T1,S1-R,gb_qual,week_12,84,5,investigator,I1",
        "value, instrument",
        "instrument_range",
        "instrument's range",
    ),
    (
        "score_not_integer",
        "assessments",
        "T1,S1-R,gb_quant,week_12,84,12.5,investigator,I1",
        "value, instrument",
        "instrument_range",
        "whole numbers for integer instruments",
    ),
    (
        "masi_above_range",
        "assessments",
        "T1,S1-R,masi,week_12,84,48.5,investigator,I1",
        "value, instrument",
        "instrument_range",
        "instrument's range",
    ),
    (
        "satisfaction_below_range",
        "assessments",
        "T1,S1-R,satisfaction_4,week_12,84,0,patient,S1",
        "value, instrument",
        "instrument_range",
        "instrument's range",
    ),
    (
        "value_type",
        "assessments",
        "T1,S1-R,gb_quant,week_12,84,n.d.,investigator,I1",
        "value",
        "type_number",
        "must be a number",
    ),
    (
        "value_required",
        "assessments",
        "T1,S1-R,gb_quant,week_12,84,,investigator,I1",
        "value",
        "required",
        "required but missing",
    ),
    (
        "rater_role_code",
        "assessments",
        "T1,S1-R,gb_quant,week_12,84,20,nurse,N1",
        "rater_role",
        "code_rater_role",
        "codelist rater_role",
    ),
    (
        "visit_pattern",
        "assessments",
        "T1,S1-R,gb_quant,week#12,84,20,investigator,I1",
        "visit",
        "pattern",
        "must match",
    ),
    (
        "assessment_day_range",
        "assessments",
        "T1,S1-R,gb_quant,screening,-3,20,investigator,I1",
        "day",
        "range",
        "between 0 and",
    ),
    (
        "assessment_after_end",
        "assessments",
        "T1,S2-L,gb_quant,week_24,168,20,investigator,I1",
        "day",
        "within_follow_up",
        "after the subject's end_day",
    ),
    (
        "assessment_orphan_unit",
        "assessments",
        "T1,S3-L,gb_quant,week_24,168,20,investigator,I1",
        "study_id, unit_id",
        "foreign_key_units",
        "not found in units",
    ),
    (
        "assessment_in_store",
        "assessments",
        "T1,S1-L,gb_qual,week_24,168,1,investigator,I1",
        "value",
        "correction_needs_reason",
        "is stored with other values; give --reason TEXT",
    ),
    (
        "ae_term_code",
        "adverse_events",
        "T1,S1,3,,rash,5,2,mild,false,possible",
        "term",
        "code_ae_term",
        "codelist ae_term",
    ),
    (
        "ae_severity_code",
        "adverse_events",
        "T1,S1,4,,erythema,5,2,grade 2,false,possible",
        "severity",
        "code_severity",
        "codelist severity",
    ),
    (
        "ae_relatedness_code",
        "adverse_events",
        "T1,S1,5,,erythema,5,2,mild,false,maybe",
        "relatedness",
        "code_relatedness",
        "codelist relatedness",
    ),
    (
        "ae_serious_type",
        "adverse_events",
        "T1,S1,6,,erythema,5,2,mild,unknown,possible",
        "serious",
        "type_boolean",
        "true or false",
    ),
    (
        "ae_duration_range",
        "adverse_events",
        "T1,S1,7,,erythema,5,-2,mild,false,possible",
        "duration_days",
        "range",
        "between 0 and 3650",
    ),
    (
        "ae_seq_range",
        "adverse_events",
        "T1,S1,0,,erythema,5,2,mild,false,possible",
        "ae_seq",
        "range",
        "between 1 and 10000",
    ),
    (
        "ae_after_end",
        "adverse_events",
        "T1,S2,2,,erythema,100,2,mild,false,possible",
        "onset_day",
        "within_follow_up",
        "after the subject's end_day",
    ),
    (
        "ae_orphan_subject",
        "adverse_events",
        "T1,S42,1,,erythema,5,2,mild,false,possible",
        "study_id, subject_id",
        "foreign_key_subjects",
        "not found in subjects",
    ),
    (
        "ae_orphan_unit",
        "adverse_events",
        "T1,S1,8,S1-Z,erythema,5,2,mild,false,possible",
        "study_id, unit_id",
        "foreign_key_units",
        "not found in units",
    ),
]


def main() -> None:
    """Write the corpus files and cases.yaml."""
    cases = []
    for name, table, row, column, rule, message in ROW_CASES:
        path = HERE / f"{name}_{table}.csv"
        path.write_text(f"{HEADERS[table]}\n{GOOD[table]}\n{row}\n")
        cases.append(
            {
                "file": path.name,
                "rows_in": 2,
                "row": 2,
                "column": column,
                "rule": rule,
                "message": message,
            }
        )
    # a duplicate key inside one file: the second row is quarantined, the first kept
    dup = HERE / "duplicate_in_file_assessments.csv"
    dup.write_text(
        f"{HEADERS['assessments']}\n{GOOD['assessments']}\n"
        f"{GOOD['assessments'].replace(',20,', ',21,')}\n"
    )
    cases.append(
        {
            "file": dup.name,
            "rows_in": 2,
            "row": 2,
            "column": "study_id, unit_id, instrument, day, rater_id",
            "rule": "duplicate_key",
            "message": "duplicates the key of an earlier row",
        }
    )
    rejected = {
        "missing_column_assessments.csv": (
            "study_id,unit_id,instrument,visit,day,rater_role,"
            "rater_id\nT1,S1-R,gb_quant,w,84,investigator,I1\n",
            "missing required column(s) 'value'",
        ),
        "unknown_column_assessments.csv": (
            HEADERS["assessments"] + ",comment\n" + GOOD["assessments"] + ",fine\n",
            "column(s) 'comment' are not in table assessments",
        ),
        "email_subjects.csv": (
            HEADERS["subjects"] + ",email\n" + GOOD["subjects"] + ",a@b.org\n",
            "'email' look like direct identifiers",
        ),
        "names_subjects.csv": (
            HEADERS["subjects"] + ",Patient Name\n" + GOOD["subjects"] + ",Jane Doe\n",
            "'Patient Name' look like direct identifiers",
        ),
        "birth_date_subjects.csv": (
            HEADERS["subjects"] + ",date_of_birth\n" + GOOD["subjects"] + ",1985-02-01\n",
            "'date_of_birth' look like direct identifiers",
        ),
        "phone_subjects.csv": (
            HEADERS["subjects"] + ",phone\n" + GOOD["subjects"] + ",0123\n",
            "'phone' look like direct identifiers",
        ),
        "mrn_subjects.csv": (
            HEADERS["subjects"] + ",MRN\n" + GOOD["subjects"] + ",99812\n",
            "'MRN' look like direct identifiers",
        ),
        "visits.csv": (
            HEADERS["assessments"] + "\n" + GOOD["assessments"] + "\n",
            "cannot tell which table this feed holds",
        ),
        "corrupt_assessments.parquet": (
            "this is not a parquet file\n",
            "cannot be read as PARQUET",
        ),
        "corrupt_assessments.xlsx": ("PK\x03\x04 broken zip\n", "cannot be read as XLSX"),
        "badmapping_assessments.csv": (
            HEADERS["assessments"] + "\n" + GOOD["assessments"] + "\n",
            "unknown mapping keys ['rename']",
        ),
    }
    for name, (content, message) in rejected.items():
        (HERE / name).write_text(content)
        cases.append({"file": name, "rejected": message})
    (HERE / "badmapping_assessments.csv.mapping.yaml").write_text("rename: {a: b}\n")
    (HERE / "cases.yaml").write_text(
        "# Expected outcome of ingesting each corpus file into a store holding tests/data/valid.\n"
        "# Written by make_corpus.py.\n" + yaml.safe_dump({"cases": cases}, sort_keys=False)
    )


if __name__ == "__main__":
    main()
