//! `.xlsx` contact files, read with calamine: the first sheet or a named one. A row's line is
//! its row number in the sheet, as Excel shows it.

use calamine::{Data, Reader, Xlsx};

use super::{ImportError, RowProblem};

pub struct Sheet {
    pub name: String,
    /// Rows with their sheet row numbers, the header first.
    pub rows: Vec<(u64, Vec<String>)>,
}

pub fn read(bytes: &[u8], wanted: Option<&str>) -> Result<Sheet, ImportError> {
    let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).map_err(|e| ImportError::Xlsx(e.to_string()))?;
    let names = book.sheet_names();
    let name = match wanted {
        None => names.first().cloned().ok_or(ImportError::Empty)?,
        Some(wanted) => names
            .iter()
            .find(|n| n.as_str() == wanted)
            .or_else(|| names.iter().find(|n| n.trim().to_lowercase() == wanted.trim().to_lowercase()))
            .cloned()
            .ok_or_else(|| ImportError::NoSuchSheet { wanted: wanted.to_owned(), available: names.join(", ") })?,
    };
    let range = book.worksheet_range(&name).map_err(|e| ImportError::Xlsx(e.to_string()))?;
    // The range starts at the first cell in use, which need not be A1.
    let first_row = u64::from(range.start().map_or(0, |(row, _)| row));
    let rows = range.rows().enumerate().map(|(i, cells)| (first_row + i as u64 + 1, cells.iter().map(cell_text).collect())).collect();
    Ok(Sheet { name, rows })
}

/// A cell as the person sees it in Excel: whole numbers without a decimal point (a customer
/// number is a number to Excel), dates as ISO dates.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::DateTime(d) if d.is_datetime() => {
            let (y, mo, day, h, mi, s, _) = d.to_ymd_hms_milli();
            if (h, mi, s) == (0, 0, 0) {
                format!("{y:04}-{mo:02}-{day:02}")
            } else {
                format!("{y:04}-{mo:02}-{day:02} {h:02}:{mi:02}:{s:02}")
            }
        }
        other => other.to_string(),
    }
}

/// The sheet's rows as the importer takes them; a sheet has no broken quotes, so no problems.
pub fn records(rows: Vec<(u64, Vec<String>)>) -> impl Iterator<Item = Result<(u64, Vec<String>), RowProblem>> {
    rows.into_iter().map(Ok)
}

/// Builds small `.xlsx` files for tests: cells are text, or numbers when only digits and a point.
#[cfg(test)]
pub(crate) fn workbook(sheets: &[(&str, &[&[&str]])]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut put = |name: &str, body: String| {
        zip.start_file(name, options).expect("zip entry");
        zip.write_all(body.as_bytes()).expect("zip write");
    };
    let main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
    let rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    let mut content_types = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>"#,
    );
    let mut workbook = format!(r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{rel}"><sheets>"#);
    let mut rels = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#);
    for (n, (name, _)) in sheets.iter().enumerate() {
        let n = n + 1;
        content_types.push_str(&format!(
            r#"<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#
        ));
        workbook.push_str(&format!(r#"<sheet name="{name}" sheetId="{n}" r:id="rId{n}"/>"#));
        rels.push_str(&format!(r#"<Relationship Id="rId{n}" Type="{rel}/worksheet" Target="worksheets/sheet{n}.xml"/>"#));
    }
    content_types.push_str("</Types>");
    workbook.push_str("</sheets></workbook>");
    rels.push_str("</Relationships>");
    put("[Content_Types].xml", content_types);
    put("_rels/.rels", format!(r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>"#));
    put("xl/workbook.xml", workbook);
    put("xl/_rels/workbook.xml.rels", rels);
    for (n, (_, rows)) in sheets.iter().enumerate() {
        let mut xml = format!(r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{main}"><sheetData>"#);
        for (r, row) in rows.iter().enumerate() {
            // An empty row is left out of the XML, as Excel does.
            if row.iter().all(|c| c.is_empty()) {
                continue;
            }
            xml.push_str(&format!(r#"<row r="{}">"#, r + 1));
            for (c, cell) in row.iter().enumerate() {
                let at = format!("{}{}", char::from(b'A' + c as u8), r + 1);
                if cell.is_empty() {
                    continue;
                }
                if cell.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                    xml.push_str(&format!(r#"<c r="{at}"><v>{cell}</v></c>"#));
                } else {
                    let text = cell.replace('&', "&amp;").replace('<', "&lt;");
                    xml.push_str(&format!(r#"<c r="{at}" t="inlineStr"><is><t>{text}</t></is></c>"#));
                }
            }
            xml.push_str("</row>");
        }
        xml.push_str("</sheetData></worksheet>");
        put(&format!("xl/worksheets/sheet{}.xml", n + 1), xml);
    }
    zip.finish().expect("zip").into_inner()
}
