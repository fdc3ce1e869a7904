//! SQLite: the equipment register, calibration history, results and certificates.

use mqttcal_messages::{
    Base64, CalibrationRecord, CertificateDocument, CertificateRecord, Equipment, EquipmentKind,
    ResultRecord,
};
use rusqlite::{params, OptionalExtension, Row};

use super::{json, plain, SqliteStore};
use crate::records::{budget_of, equipment_used_of};
use crate::{now, BoxFuture, RecordStore, StoreError, StoredResult};

/// A database error, with constraint violations told in the caller's words.
fn q(e: rusqlite::Error, fk: &str, unique: &str) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.extended_code {
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return StoreError::Invalid(fk.into()),
            rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => return StoreError::Invalid(unique.into()),
            _ => {}
        }
    }
    StoreError::query(e)
}

const RESULT_COLUMNS: &str = "id, recorded_at, job, quantity, standard, value, unit, standard_uncertainty, coverage_factor, expanded_uncertainty, effective_dof, budget, environment_ok, software_version, config_hash, amends, reason, recorded_by, equipment, environment";

fn result_of(r: &Row) -> rusqlite::Result<StoredResult> {
    let id = r.get(0)?;
    let budget = budget_of(id, json(r.get(11)?)?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(11, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let equipment = equipment_used_of(id, json(r.get(18)?)?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(18, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(StoredResult {
        id,
        recorded_at: r.get(1)?,
        result: ResultRecord {
            job: r.get(2)?,
            quantity: r.get(3)?,
            standard: r.get(4)?,
            value: r.get(5)?,
            unit: r.get(6)?,
            standard_uncertainty: r.get(7)?,
            coverage_factor: r.get(8)?,
            expanded_uncertainty: r.get(9)?,
            effective_dof: r.get(10)?,
            budget,
            environment_ok: r.get(12)?,
            software_version: r.get(13)?,
            config_hash: r.get(14)?,
            amends: r.get(15)?,
            reason: r.get(16)?,
            recorded_by: r.get(17)?,
            equipment,
            environment: r.get::<_, Option<String>>(19)?.map(json).transpose()?,
        },
    })
}

const EQUIPMENT_COLUMNS: &str = "id, kind, description, manufacturer, model, serial, owner, nominal_value, unit, location, calibration_due, checked_in, checked_out";

/// A row of [`EQUIPMENT_COLUMNS`], its kind as stored.
fn equipment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, Equipment)> {
    Ok((
        r.get::<_, String>(1)?,
        Equipment {
            id: r.get(0)?,
            kind: EquipmentKind::Standard,
            description: r.get(2)?,
            manufacturer: r.get(3)?,
            model: r.get(4)?,
            serial: r.get(5)?,
            owner: r.get(6)?,
            nominal_value: r.get(7)?,
            unit: r.get(8)?,
            location: r.get(9)?,
            calibration_due: r.get(10)?,
            checked_in: r.get(11)?,
            checked_out: r.get(12)?,
        },
    ))
}

/// The item of an [`equipment_row`], with its kind read.
fn with_kind((kind, mut e): (String, Equipment)) -> Result<Equipment, StoreError> {
    e.kind = EquipmentKind::parse(&kind).map_err(|e| StoreError::Corrupt {
        what: "equipment kind".into(),
        source: Box::new(e),
    })?;
    Ok(e)
}

impl RecordStore for SqliteStore {
    fn register_equipment<'a>(&'a self, e: &'a Equipment) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            e.validate()?;
            let e = e.clone();
            self.blocking(move |c| {
            c.execute(
                "INSERT INTO equipment (id, kind, description, manufacturer, model, serial, owner, nominal_value, unit, location, calibration_due, checked_in, checked_out, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (id) DO UPDATE SET kind = ?2, description = ?3, manufacturer = ?4, model = ?5, serial = ?6, owner = ?7, nominal_value = ?8, unit = ?9, location = ?10, calibration_due = ?11, checked_in = ?12, checked_out = ?13, recorded_at = ?14",
                params![e.id, e.kind.as_str(), e.description, e.manufacturer, e.model, e.serial, e.owner, e.nominal_value, e.unit, e.location, e.calibration_due, e.checked_in, e.checked_out, now()],
            )
            .map_err(plain)?;
            Ok(())
        })
        .await
        })
    }

    fn equipment<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Equipment>, StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            self.blocking(move |c| {
                let row = c
                    .query_row(
                        &format!("SELECT {EQUIPMENT_COLUMNS} FROM equipment WHERE id = ?1"),
                        [&id],
                        equipment_row,
                    )
                    .optional()
                    .map_err(plain)?;
                row.map(with_kind).transpose()
            })
            .await
        })
    }

    fn register<'a>(
        &'a self,
        limit: u32,
        offset: u64,
    ) -> BoxFuture<'a, Result<Vec<Equipment>, StoreError>> {
        Box::pin(async move {
            self.blocking(move |c| {
                let mut stmt = c
                    .prepare(&format!(
                        "SELECT {EQUIPMENT_COLUMNS} FROM equipment ORDER BY id LIMIT ?1 OFFSET ?2"
                    ))
                    .map_err(plain)?;
                let offset = i64::try_from(offset).unwrap_or(i64::MAX);
                let rows = stmt
                    .query_map(rusqlite::params![limit, offset], equipment_row)
                    .map_err(plain)?;
                rows.map(|row| with_kind(row.map_err(plain)?)).collect()
            })
            .await
        })
    }

    fn add_calibration<'a>(
        &'a self,
        k: &'a CalibrationRecord,
    ) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(async move {
            k.validate()?;
            let k = k.clone();
            self.blocking(move |c| {
            c.execute(
                "INSERT INTO calibrations (equipment, calibrated_at, value, unit, uncertainty, coverage_factor, certificate, laboratory, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![k.equipment, k.calibrated_at, k.value, k.unit, k.uncertainty, k.coverage_factor, k.certificate, k.laboratory, now()],
            )
            .map_err(|e| q(e, &k.unknown_equipment(), "duplicate calibration"))?;
            Ok(c.last_insert_rowid())
        })
        .await
        })
    }

    fn history<'a>(
        &'a self,
        equipment: &'a str,
    ) -> BoxFuture<'a, Result<Vec<CalibrationRecord>, StoreError>> {
        Box::pin(async move {
            let equipment = equipment.to_owned();
            self.blocking(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT equipment, calibrated_at, value, unit, uncertainty, coverage_factor, certificate, laboratory
                     FROM calibrations WHERE equipment = ?1 ORDER BY calibrated_at, id",
                )
                .map_err(plain)?;
            let rows = stmt
                .query_map([&equipment], |r| {
                    Ok(CalibrationRecord {
                        equipment: r.get(0)?,
                        calibrated_at: r.get(1)?,
                        value: r.get(2)?,
                        unit: r.get(3)?,
                        uncertainty: r.get(4)?,
                        coverage_factor: r.get(5)?,
                        certificate: r.get(6)?,
                        laboratory: r.get(7)?,
                    })
                })
                .map_err(plain)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(plain)?;
            Ok(rows)
        })
        .await
        })
    }

    fn save_result<'a>(
        &'a self,
        r: &'a ResultRecord,
    ) -> BoxFuture<'a, Result<StoredResult, StoreError>> {
        Box::pin(async move {
            r.validate()?;
            let r = r.clone();
            self.blocking(move |c| {
            c.execute(
                "INSERT INTO results (recorded_at, job, quantity, standard, value, unit, standard_uncertainty, coverage_factor, expanded_uncertainty, effective_dof, budget, environment_ok, software_version, config_hash, amends, reason, recorded_by, equipment, environment)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                params![now(), r.job, r.quantity, r.standard, r.value, r.unit, r.standard_uncertainty, r.coverage_factor, r.expanded_uncertainty, r.effective_dof, serde_json::to_string(&r.budget).map_err(StoreError::query)?, r.environment_ok, r.software_version, r.config_hash, r.amends, r.reason, r.recorded_by, serde_json::to_string(&r.equipment).map_err(StoreError::query)?, r.environment.as_ref().map(|e| e.to_string())],
            )
            .map_err(|e| q(e, &r.unknown_amended(), "duplicate result"))?;
            let id = c.last_insert_rowid();
            c.query_row(&format!("SELECT {RESULT_COLUMNS} FROM results WHERE id = ?1"), [id], result_of)
                .map_err(plain)
        })
        .await
        })
    }

    fn results<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Vec<StoredResult>, StoreError>> {
        Box::pin(async move {
            let job = job.to_owned();
            self.blocking(move |c| {
                let mut stmt = c
                    .prepare(&format!(
                        "SELECT {RESULT_COLUMNS} FROM results WHERE job = ?1 ORDER BY id"
                    ))
                    .map_err(plain)?;
                let rows = stmt
                    .query_map([&job], result_of)
                    .map_err(plain)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(plain)?;
                Ok(rows)
            })
            .await
        })
    }

    fn save_certificate<'a>(
        &'a self,
        cert: &'a CertificateRecord,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(async move {
            cert.validate()?;
            let hash = cert.compute_hash();
            let cert = cert.clone();
            let h = hash.clone();
            self.blocking(move |c| {
            let tx = c.transaction().map_err(plain)?;
            tx.execute(
                "INSERT INTO certificates (number, job, issued_at, authorised_by, replaces, content_hash, data, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![cert.number, cert.job, cert.issued_at, cert.authorised_by, cert.replaces, h, cert.data.to_string(), now()],
            )
            .map_err(|e| {
                if e.to_string().contains("certificates.replaces") {
                    return StoreError::Invalid(cert.already_replaced());
                }
                q(e, &cert.unknown_replaced(), &cert.already_issued())
            })?;
            for d in &cert.documents {
                tx.execute(
                    "INSERT INTO certificate_documents (certificate, kind, media_type, content, sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![cert.number, d.kind, d.media_type, d.content.0, d.sha256()],
                )
                .map_err(plain)?;
            }
            tx.commit().map_err(plain)
        })
        .await?;
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
            self.blocking(move |c| {
                let mut stmt = c
                    .prepare(
                        &format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates
                         WHERE issued_at >= ?1 AND issued_at <= ?2 ORDER BY issued_at, number LIMIT ?3"),
                    )
                    .map_err(plain)?;
                let rows = stmt
                    .query_map(rusqlite::params![since, until, limit], certificate_of)
                    .map_err(plain)?;
                let found = rows.collect::<Result<Vec<_>, _>>().map_err(plain)?;
                Ok(found)
            })
            .await
        })
    }

    fn certificate<'a>(
        &'a self,
        number: &'a str,
    ) -> BoxFuture<'a, Result<Option<CertificateRecord>, StoreError>> {
        Box::pin(async move {
            let number = number.to_owned();
            self.blocking(move |c| {
            let Some(mut cert) = c
                .query_row(
                    &format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE number = ?1"),
                    [&number],
                    certificate_of,
                )
                .optional()
                .map_err(plain)?
            else {
                return Ok(None);
            };
            let mut stmt = c
                .prepare("SELECT kind, media_type, content FROM certificate_documents WHERE certificate = ?1 ORDER BY kind")
                .map_err(plain)?;
            cert.documents = stmt
                .query_map([&number], |r| {
                    Ok(CertificateDocument {
                        kind: r.get(0)?,
                        media_type: r.get(1)?,
                        content: Base64(r.get(2)?),
                    })
                })
                .map_err(plain)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(plain)?;
            Ok(Some(cert))
        })
        .await
        })
    }

    fn next_certificate_number<'a>(
        &'a self,
        series: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let series = series.to_owned();
            self.blocking(move |c| {
                let last: i64 = c
                    .query_row(
                        "INSERT INTO certificate_counters (series, last) VALUES (?1, 1)
                         ON CONFLICT (series) DO UPDATE SET last = last + 1
                         RETURNING last",
                        [&series],
                        |r| r.get(0),
                    )
                    .map_err(plain)?;
                Ok(last as u64)
            })
            .await
        })
    }
}

/// The columns [`certificate_of`] reads, in its order.
const CERTIFICATE_COLUMNS: &str =
    "number, job, issued_at, authorised_by, replaces, content_hash, data,
     (SELECT r.number FROM certificates r WHERE r.replaces = certificates.number) AS replaced_by";

/// A certificate's row (selected as [`CERTIFICATE_COLUMNS`]), without its documents.
fn certificate_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<CertificateRecord> {
    Ok(CertificateRecord {
        number: r.get(0)?,
        job: r.get(1)?,
        issued_at: r.get(2)?,
        authorised_by: r.get(3)?,
        replaces: r.get(4)?,
        content_hash: r.get(5)?,
        data: json(r.get(6)?)?,
        documents: Vec::new(),
        replaced_by: r.get(7)?,
    })
}
