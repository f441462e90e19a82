// Labels of the values a kiosk's buttons send (`user.choice`), as staff pages show a tap in
// a transcript: the console's case and the compliance record.

export const CHOICE = {
  'handoff.teller': '找工作人员', 'handoff.remote_expert': '找远程专家', 'queue.take_number': '取号排队',
  'appointment.book': '预约办理', 'card.report_loss': '银行卡挂失', affirm: '确认', deny: '不对', help: '我能办什么',
};
