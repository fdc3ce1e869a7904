//! PostgreSQL: the equipment register, calibration history, results and certificates.

use mqttcal_messages::{
    Base64, CalibrationRecord, CertificateDocument, CertificateRecord, Equipment, EquipmentKind,
    ResultRecord,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use super::{plain, PostgresStore};
use crate::records::{budget_of, equipment_used_of};
use crate::{now, BoxFuture, RecordStore, StoreError, StoredResult};

/// A database error, with constraint violations told in the caller's words.
fn q(e: tokio_postgres::Error, fk: &str, unique: &str) -> StoreError {
    match e.code() {
        Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => StoreError::Invalid(fk.to_owned()),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Invalid(unique.to_owned()),
        _ => StoreError::query(e),
    }
}

const EQUIPMENT_COLUMNS: &str = "id, kind, description, manufacturer, model, serial, owner, nominal_value, unit, location, calibration_due, checked_in, checked_out";

fn equipment_of(r: &Row) -> Result<Equipment, StoreError> {
    Ok(Equipment {
        id: r.get(0),
        kind: EquipmentKind::parse(r.get(1)).map_err(|e| StoreError::Corrupt {
            what: "equipment kind".into(),
            source: Box::new(e),
        })?,
        description: r.get(2),
        manufacturer: r.get(3),
        model: r.get(4),
        serial: r.get(5),
        owner: r.get(6),
        nominal_value: r.get(7),
        unit: r.get(8),
        location: r.get(9),
        calibration_due: r.get(10),
        checked_in: r.get(11),
        checked_out: r.get(12),
    })
}

const RESULT_COLUMNS: &str = "id, recorded_at, job, quantity, standard, value, unit, standard_uncertainty, coverage_factor, expanded_uncertainty, effective_dof, budget, environment_ok, software_version, config_hash, amends, reason, recorded_by, equipment, environment";

fn result_of(r: &Row) -> Result<StoredResult, StoreError> {
    let id = r.get(0);
    Ok(StoredResult {
        id,
        recorded_at: r.get(1),
        result: ResultRecord {
            job: r.get(2),
            quantity: r.get(3),
            standard: r.get(4),
            value: r.get(5),
            unit: r.get(6),
            standard_uncertainty: r.get(7),
            coverage_factor: r.get(8),
            expanded_uncertainty: r.get(9),
            effective_dof: r.get(10),
            budget: budget_of(id, r.get(11))?,
            environment_ok: r.get(12),
            software_version: r.get(13),
            config_hash: r.get(14),
            amends: r.get(15),
            reason: r.get(16),
            recorded_by: r.get(17),
            equipment: equipment_used_of(id, r.get(18))?,
            environment: r.get(19),
        },
    })
}

impl RecordStore for PostgresStore {
    fn register_equipment<'a>(&'a self, e: &'a Equipment) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            e.validate()?;
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            c.execute(
            "INSERT INTO equipment (id, kind, description, manufacturer, model, serial, owner, nominal_value, unit, location, calibration_due, checked_in, checked_out, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (id) DO UPDATE SET kind = $2, description = $3, manufacturer = $4, model = $5, serial = $6, owner = $7, nominal_value = $8, unit = $9, location = $10, calibration_due = $11, checked_in = $12, checked_out = $13, recorded_at = $14",
            &[&e.id, &e.kind.as_str(), &e.description, &e.manufacturer, &e.model, &e.serial, &e.owner, &e.nominal_value, &e.unit, &e.location, &e.calibration_due, &e.checked_in, &e.checked_out, &now()],
        )
        .await
        .map_err(plain)?;
            Ok(())
        })
    }

    fn equipment<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Equipment>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let row = c
                .query_opt(
                    &format!("SELECT {EQUIPMENT_COLUMNS} FROM equipment WHERE id = $1"),
                    &[&id],
                )
                .await
                .map_err(plain)?;
            row.as_ref().map(equipment_of).transpose()
        })
    }

    fn register<'a>(
        &'a self,
        limit: u32,
        offset: u64,
    ) -> BoxFuture<'a, Result<Vec<Equipment>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let (limit, offset) = (i64::from(limit), i64::try_from(offset).unwrap_or(i64::MAX));
            let rows = c
                .query(
                    &format!(
                        "SELECT {EQUIPMENT_COLUMNS} FROM equipment ORDER BY id LIMIT $1 OFFSET $2"
                    ),
                    &[&limit, &offset],
                )
                .await
                .map_err(plain)?;
            rows.iter().map(equipment_of).collect()
        })
    }

    fn add_calibration<'a>(
        &'a self,
        k: &'a CalibrationRecord,
    ) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(async move {
            k.validate()?;
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let row = c
            .query_one(
                "INSERT INTO calibrations (equipment, calibrated_at, value, unit, uncertainty, coverage_factor, certificate, laboratory, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &[&k.equipment, &k.calibrated_at, &k.value, &k.unit, &k.uncertainty, &k.coverage_factor, &k.certificate, &k.laboratory, &now()],
            )
            .await
            .map_err(|e| q(e, &k.unknown_equipment(), "duplicate calibration"))?;
            Ok(row.get(0))
        })
    }

    fn history<'a>(
        &'a self,
        equipment: &'a str,
    ) -> BoxFuture<'a, Result<Vec<CalibrationRecord>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let rows = c
            .query(
                "SELECT equipment, calibrated_at, value, unit, uncertainty, coverage_factor, certificate, laboratory
                 FROM calibrations WHERE equipment = $1 ORDER BY calibrated_at, id",
                &[&equipment],
            )
            .await
            .map_err(plain)?;
            Ok(rows
                .iter()
                .map(|r| CalibrationRecord {
                    equipment: r.get(0),
                    calibrated_at: r.get(1),
                    value: r.get(2),
                    unit: r.get(3),
                    uncertainty: r.get(4),
                    coverage_factor: r.get(5),
                    certificate: r.get(6),
                    laboratory: r.get(7),
                })
                .collect())
        })
    }

    fn save_result<'a>(
        &'a self,
        r: &'a ResultRecord,
    ) -> BoxFuture<'a, Result<StoredResult, StoreError>> {
        Box::pin(async move {
            r.validate()?;
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let row = c
            .query_one(
                &format!(
                    "INSERT INTO results (recorded_at, job, quantity, standard, value, unit, standard_uncertainty, coverage_factor, expanded_uncertainty, effective_dof, budget, environment_ok, software_version, config_hash, amends, reason, recorded_by, equipment, environment)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) RETURNING {RESULT_COLUMNS}"
                ),
                &[&now(), &r.job, &r.quantity, &r.standard, &r.value, &r.unit, &r.standard_uncertainty, &r.coverage_factor, &r.expanded_uncertainty, &r.effective_dof, &Json(&r.budget), &r.environment_ok, &r.software_version, &r.config_hash, &r.amends, &r.reason, &r.recorded_by, &Json(&r.equipment), &r.environment.as_ref().map(Json)],
            )
            .await
            .map_err(|e| q(e, &r.unknown_amended(), "duplicate result"))?;
            result_of(&row)
        })
    }

    fn results<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Vec<StoredResult>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let rows = c
                .query(
                    &format!("SELECT {RESULT_COLUMNS} FROM results WHERE job = $1 ORDER BY id"),
                    &[&job],
                )
                .await
                .map_err(plain)?;
            rows.iter().map(result_of).collect()
        })
    }

    fn save_certificate<'a>(
        &'a self,
        cert: &'a CertificateRecord,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(async move {
            cert.validate()?;
            let hash = cert.compute_hash();
            let mut guard = self.client().await?;
            let c = guard.as_mut().expect("connected");
            let tx = c.transaction().await.map_err(plain)?;
            tx.execute(
            "INSERT INTO certificates (number, job, issued_at, authorised_by, replaces, content_hash, data, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&cert.number, &cert.job, &cert.issued_at, &cert.authorised_by, &cert.replaces, &hash, &cert.data, &now()],
        )
        .await
        .map_err(|e| {
            if e.as_db_error().and_then(|d| d.constraint()) == Some("certificates_replaces") {
                return StoreError::Invalid(cert.already_replaced());
            }
            q(e, &cert.unknown_replaced(), &cert.already_issued())
        })?;
            for d in &cert.documents {
                tx.execute(
                "INSERT INTO certificate_documents (certificate, kind, media_type, content, sha256) VALUES ($1, $2, $3, $4, $5)",
                &[&cert.number, &d.kind, &d.media_type, &d.content.0, &d.sha256()],
            )
            .await
            .map_err(plain)?;
            }
            tx.commit().await.map_err(plain)?;
            Ok(hash)
        })
    }

    fn certificates<'a>(
        &'a self,
        since: f64,
        until: f64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<CertificateRecord>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let rows = c
                .query(
                    &format!(
                        "SELECT {CERTIFICATE_COLUMNS} FROM certificates
                     WHERE issued_at >= $1 AND issued_at <= $2 ORDER BY issued_at, number LIMIT $3"
                    ),
                    &[&since, &until, &i64::from(limit)],
                )
                .await
                .map_err(plain)?;
            Ok(rows.iter().map(certificate_of).collect())
        })
    }

    fn certificate<'a>(
        &'a self,
        number: &'a str,
    ) -> BoxFuture<'a, Result<Option<CertificateRecord>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let Some(row) = c
                .query_opt(
                    &format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE number = $1"),
                    &[&number],
                )
                .await
                .map_err(plain)?
            else {
                return Ok(None);
            };
            let docs = c
            .query(
                "SELECT kind, media_type, content FROM certificate_documents WHERE certificate = $1 ORDER BY kind",
                &[&number],
            )
            .await
            .map_err(plain)?;
            Ok(Some(CertificateRecord {
                documents: docs
                    .iter()
                    .map(|d| CertificateDocument {
                        kind: d.get(0),
                        media_type: d.get(1),
                        content: Base64(d.get(2)),
                    })
                    .collect(),
                ..certificate_of(&row)
            }))
        })
    }

    fn next_certificate_number<'a>(
        &'a self,
        series: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let row = c
                .query_one(
                    "INSERT INTO certificate_counters (series, last) VALUES ($1, 1)
                     ON CONFLICT (series) DO UPDATE SET last = certificate_counters.last + 1
                     RETURNING last",
                    &[&series],
                )
                .await
                .map_err(plain)?;
            let last: i64 = row.get(0);
            Ok(last as u64)
        })
    }
}

/// The columns [`certificate_of`] reads, in its order.
const CERTIFICATE_COLUMNS: &str =
    "number, job, issued_at, authorised_by, replaces, content_hash, data,
     (SELECT r.number FROM certificates r WHERE r.replaces = certificates.number) AS replaced_by";

/// A certificate's row (selected as [`CERTIFICATE_COLUMNS`]), without its documents.
fn certificate_of(row: &tokio_postgres::Row) -> CertificateRecord {
    CertificateRecord {
        number: row.get(0),
        job: row.get(1),
        issued_at: row.get(2),
        authorised_by: row.get(3),
        replaces: row.get(4),
        content_hash: row.get(5),
        data: row.get(6),
        documents: Vec::new(),
        replaced_by: row.get(7),
    }
}
