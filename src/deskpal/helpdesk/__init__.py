"""The second helpdesk's Messages API (/helpdesk/api/messages) over deskpal's tickets and messages."""
