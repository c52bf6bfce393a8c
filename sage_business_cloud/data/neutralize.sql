-- A neutralized copy of a database (odoo-bin neutralize, or a staging copy) must not talk to the
-- production Sage book: forget the grants and stop both crons.
DELETE FROM sage_connection_token;
UPDATE sage_connection SET state = 'disconnected', sync_requested = false WHERE state != 'disconnected';
UPDATE ir_cron SET active = false
 WHERE id IN (SELECT res_id FROM ir_model_data WHERE module = 'sage_business_cloud' AND model = 'ir.cron');
